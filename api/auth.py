"""API keys: who is calling (`authenticate`, a FastAPI dependency) and what that caller may see (`Principal`).

Keys come from API_KEYS (every collection, the KEY_* limits) and API_KEYS_FILE (per key: collections, limits,
admin; checked strictly by shared/keys_file.py, so a misspelt field refuses the file); only their sha256 digests
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
from shared.keys_file import KeysFileError, load_keys_file
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


def _key_id(digest: bytes) -> str:
    return digest.hex()[:KEY_ID_CHARS]


def _plain_key(key: str, where: str) -> bytes:
    if len(key) < MIN_KEY_CHARS or key != key.strip():
        raise AuthConfigError(f"{where}: every key must be at least {MIN_KEY_CHARS} characters, without spaces")
    return key_digest(key)


def _file_entries(path: Path, settings: Settings) -> list[tuple[bytes, str, Principal]]:
    """Each [[key]] table as (digest, where it is, principal); the file is checked by shared/keys_file.py."""
    try:
        tables = load_keys_file(path).key
    except KeysFileError as exc:
        raise AuthConfigError(str(exc)) from None
    entries = []
    names: dict[str, str] = {}
    for n, table in enumerate(tables, start=1):
        where = f"API_KEYS_FILE {path}, [[key]] #{n}"
        if table.key is not None:
            digest = _plain_key(table.key, f"{where}, field `key`")
        else:
            assert table.sha256 is not None  # KeyTable holds exactly one of them
            digest = bytes.fromhex(table.sha256)
        if table.name is not None:
            if table.name in names:
                raise AuthConfigError(
                    f'{where}, field `name`: "{table.name}" is already the name of {names[table.name]}; '
                    "names must be unique (usage and metrics are reported by name)"
                )
            names[table.name] = f"[[key]] #{n}"
        principal = Principal(
            key_id=_key_id(digest),
            collections=None if table.collections is None else frozenset(table.collections),
            name=table.name,
            limits=KeyLimits.for_table(table, settings),
            admin=table.admin,
        )
        entries.append((digest, where, principal))
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
    """The keys from settings and API_KEYS_FILE, checked; AuthConfigError with one line a person can act on."""
    if not settings.keys_on:
        log.warning("API_KEYS unset: every route is open; development only (docs/security.md)")
        return KeyRing()
    defaults = KeyLimits.defaults(settings)
    listed = []
    for key in settings.API_KEYS:
        digest = _plain_key(key.get_secret_value(), "API_KEYS")
        listed.append((digest, "API_KEYS", Principal(key_id=_key_id(digest), limits=defaults)))
    if settings.API_KEYS_FILE is not None:
        listed += _file_entries(settings.API_KEYS_FILE, settings)
    seen: dict[bytes, str] = {}
    entries = []
    for digest, where, principal in listed:
        if digest in seen:
            raise AuthConfigError(f"{where}: a key appears twice (also in {seen[digest]}); give each key once")
        seen[digest] = where
        entries.append((digest, principal))
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
