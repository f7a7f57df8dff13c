"""The API keys file (API_KEYS_FILE, TOML): its tables and fields, checked strictly so a typo fails closed.

A field the model does not know is refused, never ignored: `collection = ["hr"]` (for `collections`) would
otherwise give that key every collection, and `requests_per_mnute = 4` no limit at all.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails


class KeysFileError(ValueError):
    """The keys file cannot be used as written; the message names the file, the table and the field."""


class KeyTable(BaseModel):
    """One `[[key]]` table: the key (or its sha256), who it is, what it may use, and its limits."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    # A label for people, usage reports and metrics; unique in the file (the key's id does not depend on it).
    name: str | None = Field(default=None, min_length=1, max_length=64)
    collections: list[str] | None = None  # None: every collection
    admin: bool = False  # sees every key's usage and feedback
    # Limits; unset: the KEY_* setting of the same name (docs/configuration.md), itself unset = no limit.
    requests_per_minute: int | None = Field(default=None, ge=1)
    max_streams: int | None = Field(default=None, ge=1)
    questions_per_day: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    upload_bytes_per_day: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_of_key_or_digest(self) -> KeyTable:
        if (self.key is None) == (self.sha256 is None):
            raise ValueError("give exactly one of `key` or `sha256`")
        return self


class KeysFile(BaseModel):
    """The whole file: `[[key]]` tables and nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: list[KeyTable] = Field(min_length=1)


def load_keys_file(path: Path) -> KeysFile:
    """The file parsed and checked; KeysFileError naming the file, the `[[key]]` table and the field."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise KeysFileError(f"API_KEYS_FILE {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise KeysFileError(f"API_KEYS_FILE {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not raw.get("key") and set(raw) <= {"key"}:
        raise KeysFileError(f"API_KEYS_FILE {path} holds no [[key]] table (each key: [[key]] with `key` or `sha256`)")
    try:
        return KeysFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_where(error["loc"], raw) + _what(error) for error in exc.errors())
        raise KeysFileError(f"API_KEYS_FILE {path}: {problems}") from None


def _where(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """`[[key]] #2 ("team"), field `requests_per_mnute`: ` from pydantic's ("key", 1, "requests_per_mnute")."""
    if len(loc) >= 2 and loc[0] == "key" and isinstance(loc[1], int):
        table = raw["key"][loc[1]]
        name = table.get("name") if isinstance(table, dict) else None
        where = f"[[key]] #{loc[1] + 1}" + (f' ("{name}")' if isinstance(name, str) else "")
        return (where if len(loc) == 2 else f"{where}, field `{loc[2]}`") + ": "
    if loc:
        return f"top-level `{loc[0]}`: " if loc[0] != "key" else "`key`: "
    return ""


def _what(error: ErrorDetails) -> str:
    """pydantic's message, in the file's terms where it would not say what to write instead."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        if len(loc) == 1:
            return "unknown table (the file holds only [[key]] tables)"
        return f"unknown field (a [[key]] table may have: {', '.join(KeyTable.model_fields)})"
    if error["type"] == "missing" and loc == ("key",):
        return "no [[key]] table"
    if error["type"] == "string_pattern_mismatch" and loc[-1] == "sha256":
        return 'must be 64 hex digits (printf %s "$KEY" | sha256sum)'
    return error["msg"].removeprefix("Value error, ")
