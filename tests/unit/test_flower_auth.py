"""Flower's login: generated once into .env when unset, never a built-in default; malformed values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.flower_auth import ensure
from shared.settings import Settings


def test_a_login_is_generated_into_the_env_file_once_and_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("ZHIPU_API_KEY=k.s")  # no trailing newline: the new line must not join it
    first = ensure(env_file)
    user, _, password = first.partition(":")
    assert user and len(password) >= 24
    assert env_file.read_text().splitlines() == ["ZHIPU_API_KEY=k.s", f"FLOWER_BASIC_AUTH={first}"]
    assert env_file.stat().st_mode & 0o077 == 0
    assert ensure(env_file) == first
    assert ensure(tmp_path / "other.env") != first  # random, not a default


@pytest.mark.parametrize("value", ["admin", "admin:", ":pw", "a:b,c"])
def test_flower_basic_auth_needs_a_user_and_a_password(value: str) -> None:
    with pytest.raises(ValueError, match="FLOWER_BASIC_AUTH"):
        Settings(FLOWER_BASIC_AUTH=value, _env_file=None)  # type: ignore[call-arg,arg-type]
