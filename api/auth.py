"""API keys: who is calling (`authenticate`, a FastAPI dependency) and what that caller may see (`Principal`).

Keys come from API_KEYS (unlimited) and API_KEYS_FILE (per-key collection limits); only their sha256 digests
are kept, compared with `hmac.compare_digest` against every entry. No keys configured: every caller is the
open principal (development only, warned at start-up). See docs/security.md.

Deliberate choices:
- A caller that may not see a job or a collection gets the same 404 as for one that does not exist: a 403
  would confirm the id to a caller guessing ids (insecure direct object reference).
- A job's owner is its key id (the first 16 hex digits of the key's sha256), stored in the job record: not the
  key, and stable when the key's name changes in the keys file.
- A signed stream token (api/stream_tokens.py) stands in for a key only on routes marked
  `@stream_token_accepted`, and only for the job its path names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import stream_tokens
from api.collection_checks import collection_not_found
from api.errors import ApiError
from shared.key_limits import KeyLimits
from shared.settings import Settings

log = logging.getLogger(__name__)

KEY_ID_CHARS = 16
MIN_KEY_CHARS = 16
MIN_SECRET_CHARS = 32
PLACEHOLDERS = ("changeme", "change-me", "change_me", "changethis", "placeholder", "example", "secret-here", "xxxx")
TOKEN_ACCEPTED = "_ragqueue_stream_token_accepted"

bearer = HTTPBearer(auto_error=False, description="An API key from API_KEYS or API_KEYS_FILE (docs/security.md)")

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class AuthConfigError(Exception):
    """The keys or the stream secret are misconfigured; the API refuses to start (api/main.py)."""


@dataclass(frozen=True)
class Principal:
    """The caller: a key (its id and allowed collections), the open principal, or a stream token for one job."""

    key_id: str | None = None  # None: no keys configured (open), or a stream token
    collections: frozenset[str] | None = None  # None: every collection
    name: str | None = None
    stream_job: str | None = None  # set for a stream token: that job only
    limits: KeyLimits = KeyLimits()  # what this key may use (shared/key_limits.py); none for the open principal
    admin: bool = False  # sees every key's usage and feedback

    @property
    def owner(self) -> str:
        """What a job created by this caller records as its owner ("" when keys are off)."""
        return self.key_id or ""

    def may_see_job(self, job_id: str, owner: str) -> bool:
        if self.stream_job is not None:
            return job_id == self.stream_job
        return self.key_id is None or owner == self.key_id  # key ids are not secrets: no constant time needed

    def may_use(self, collection: str) -> bool:
        if self.stream_job is not None:
            return False
        return self.collections is None or collection in self.collections

    def require_collection(self, collection: str) -> None:
        """The 404 a missing collection gets, for a collection this key is not allowed."""
        if not self.may_use(collection):
            raise collection_not_found(collection)


OPEN = Principal()


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class KeyRing:
    """The configured keys (sha256 digest → principal) and the stream-token secret; empty = open mode."""

    entries: tuple[tuple[bytes, Principal], ...] = ()
    stream_secret: str | None = None

    @property
    def open(self) -> bool:
        return not self.entries

    def principal_for(self, key: str) -> Principal | None:
        """The key's principal, or None; every entry is compared, in constant time each."""
        digest = key_digest(key)
        found = None
        for candidate, principal in self.entries:
            if hmac.compare_digest(digest, candidate):
                found = principal
        return found


def _entry(digest: bytes, collections: frozenset[str] | None, name: str | None) -> tuple[bytes, Principal]:
    return digest, Principal(key_id=digest.hex()[:KEY_ID_CHARS], collections=collections, name=name)


def _plain_key(key: str, where: str) -> bytes:
    if len(key) < MIN_KEY_CHARS or key != key.strip():
        raise AuthConfigError(f"{where}: every key must be at least {MIN_KEY_CHARS} characters, without spaces")
    return key_digest(key)


def _file_entries(path: Path) -> list[tuple[bytes, Principal]]:
    """[[key]] tables: `key` (the key) or `sha256` (its hex digest), optional `name`, optional `collections`."""
    try:
        with open(path, "rb") as f:
            tables = tomllib.load(f).get("key", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthConfigError(f"API_KEYS_FILE {path}: {exc}") from exc
    entries = []
    for n, table in enumerate(tables, start=1):
        where = f"API_KEYS_FILE {path}, key #{n}"
        if not isinstance(table, dict) or ("key" in table) == ("sha256" in table):
            raise AuthConfigError(f"{where}: give exactly one of `key` or `sha256`")
        if "key" in table:
            digest = _plain_key(str(table["key"]), where)
        else:
            try:
                digest = bytes.fromhex(str(table["sha256"]))
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise AuthConfigError(f"{where}: `sha256` must be 64 hex digits (sha256sum of the key)")
        collections = table.get("collections")
        if collections is not None and not (
            isinstance(collections, list) and all(isinstance(c, str) for c in collections)
        ):
            raise AuthConfigError(f"{where}: `collections` must be a list of collection names")
        name = str(table["name"]) if "name" in table else None
        entries.append(_entry(digest, None if collections is None else frozenset(collections), name))
    if not entries:
        raise AuthConfigError(f"API_KEYS_FILE {path} holds no [[key]] table")
    return entries


def _check_secret(secret: str | None) -> str:
    if secret is None:
        raise AuthConfigError("API keys are set but STREAM_TOKEN_SECRET is not (generate one: openssl rand -hex 32)")
    lowered = secret.lower()
    if len(secret) < MIN_SECRET_CHARS or len(set(secret)) < 8 or any(p in lowered for p in PLACEHOLDERS):
        raise AuthConfigError(
            f"STREAM_TOKEN_SECRET looks like a placeholder or is shorter than {MIN_SECRET_CHARS} characters "
            "(generate one: openssl rand -hex 32)"
        )
    return secret


def load_keyring(settings: Settings) -> KeyRing:
    """The keys from settings, checked; AuthConfigError with one line a person can act on."""
    if not settings.keys_on:
        log.warning("API_KEYS unset: every route is open; development only (docs/security.md)")
        return KeyRing()
    entries = [_entry(_plain_key(k.get_secret_value(), "API_KEYS"), None, None) for k in settings.API_KEYS]
    if settings.API_KEYS_FILE is not None:
        entries += _file_entries(settings.API_KEYS_FILE)
    digests = [digest for digest, _ in entries]
    if len(set(digests)) != len(digests):
        raise AuthConfigError("a key appears twice (in API_KEYS and API_KEYS_FILE, or twice in one of them)")
    configured = settings.STREAM_TOKEN_SECRET
    secret = _check_secret(configured.get_secret_value() if configured is not None else None)
    log.info("API keys on: %d key(s); every /v1 route and /stream_chat needs Authorization: Bearer", len(entries))
    return KeyRing(entries=tuple(entries), stream_secret=secret)


def stream_token_accepted(endpoint: Endpoint) -> Endpoint:
    """Mark a route whose `{job_id}` stream may be opened with `?token=` instead of a key."""
    setattr(endpoint, TOKEN_ACCEPTED, True)
    return endpoint


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller's principal; 401 `unauthorized` when keys are on and none (or a wrong one) is given."""
    ring: KeyRing = request.app.state.keyring
    if ring.open:
        return OPEN
    if credentials is not None:
        principal = ring.principal_for(credentials.credentials)
        if principal is None:
            raise _unauthorized("the API key is not valid (Authorization: Bearer <key>)")
        return principal
    token = request.query_params.get("token")
    job_id = request.path_params.get("job_id")
    if token is not None and job_id is not None and getattr(request.scope.get("endpoint"), TOKEN_ACCEPTED, False):
        assert ring.stream_secret is not None  # load_keyring refuses keys without it
        try:
            stream_tokens.verify(ring.stream_secret, token, job_id)
        except stream_tokens.TokenInvalid as exc:
            raise _unauthorized(str(exc)) from exc
        return Principal(stream_job=job_id)
    raise _unauthorized("this route needs an API key: send Authorization: Bearer <key>")


async def require_path_collection(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    """`authenticate`, plus a 404 for a `{collection}` in the path this key may not use: every route, no forgetting."""
    collection = request.path_params.get("collection")
    if isinstance(collection, str):
        principal.require_collection(collection)
    return principal
