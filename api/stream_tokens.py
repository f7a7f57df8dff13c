"""Signed, expiring stream tokens: let an EventSource (which cannot send headers) open one job's stream.

A token is `base64url("<job_id>:<expiry>") "." base64url(HMAC-SHA256(secret, "stream-v1:<job_id>:<expiry>"))`.
It grants reading the stream of that one job until the expiry (Unix seconds), nothing else: the API key never
appears in a URL (docs/security.md).

Deliberate choices:
- Stateless (no Redis write per token): revoking one token early is not possible; rotating the secret revokes
  them all, and a token lives STREAM_TOKEN_TTL_S at most.
- The MAC covers a purpose prefix, so a MAC made with the same secret for anything else never verifies here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from shared.settings import Settings

PURPOSE = b"stream-v1:"


class TokenInvalid(Exception):
    """The token is malformed, forged, for another job, or expired (the message says which)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, PURPOSE + payload, hashlib.sha256).digest()


def sign(secret: str, job_id: str, expires_at: int) -> str:
    """A token for `job_id`'s stream, valid until `expires_at` (Unix seconds)."""
    payload = f"{job_id}:{expires_at}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret.encode(), payload))}"


def issue(secret: str, job_id: str, ttl_s: int) -> str:
    """A token for `job_id`'s stream, valid for `ttl_s` seconds from now."""
    return sign(secret, job_id, int(time.time()) + ttl_s)


def verify(secret: str, token: str, job_id: str) -> None:
    """Return if `token` was signed with `secret` for `job_id` and has not expired; raise TokenInvalid otherwise."""
    encoded, dot, mac_text = token.partition(".")
    try:
        if not dot or len(token) > 512:
            raise ValueError
        payload, mac = _unb64(encoded), _unb64(mac_text)
    except (ValueError, binascii.Error) as exc:
        raise TokenInvalid("the stream token is malformed") from exc
    if not hmac.compare_digest(mac, _mac(secret.encode(), payload)):
        raise TokenInvalid("the stream token's signature does not verify")
    token_job, _, expiry = payload.decode(errors="replace").rpartition(":")
    if not hmac.compare_digest(token_job.encode(), job_id.encode()):
        raise TokenInvalid("the stream token is for another job")
    if not expiry.isascii() or not expiry.isdigit() or int(expiry) <= time.time():
        raise TokenInvalid("the stream token has expired; ask for a new stream_url (POST /v1/queries)")


def signed_url(path: str, job_id: str, settings: Settings) -> str:
    """`path` with `?token=` for `job_id` when API keys are on; unchanged when they are off (nothing to prove)."""
    if not settings.keys_on or settings.STREAM_TOKEN_SECRET is None:
        return path
    return f"{path}?token={issue(settings.STREAM_TOKEN_SECRET.get_secret_value(), job_id, settings.STREAM_TOKEN_TTL_S)}"
