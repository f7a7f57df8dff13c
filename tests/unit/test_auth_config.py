"""API key settings, the key ring built from them, and stream tokens, without a server."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from api import stream_tokens
from api.auth import AuthConfigError, load_keyring
from shared.ops.log_setup import secrets_of
from shared.settings import Settings

KEY = "a-key-long-enough-0001"
SECRET = "0f3a9c1e7b2d4f6a8c0e2b4d6f8a1c3e"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("API_KEYS", "API_KEYS_FILE", "STREAM_TOKEN_SECRET", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_api_keys_are_comma_separated_and_turn_cors_to_no_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    on = settings(monkeypatch, API_KEYS=f" {KEY} , other-key-long-enough ,", STREAM_TOKEN_SECRET=SECRET)
    assert [k.get_secret_value() for k in on.API_KEYS] == [KEY, "other-key-long-enough"]
    assert on.keys_on and on.cors_origins == []
    assert KEY in secrets_of(on) and SECRET in secrets_of(on)  # redacted from every log line
    listed = settings(monkeypatch, API_KEYS=KEY, CORS_ORIGINS='["https://app.example"]')
    assert listed.cors_origins == ["https://app.example"]
    off = settings(monkeypatch, API_KEYS="")
    assert not off.keys_on and off.cors_origins == ["*"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"API_KEYS": KEY}, "STREAM_TOKEN_SECRET is not"),
        ({"API_KEYS": KEY, "STREAM_TOKEN_SECRET": "changeme-changeme-changeme-changeme"}, "placeholder"),
        ({"API_KEYS": KEY, "STREAM_TOKEN_SECRET": "too-short"}, "shorter than 32"),
        ({"API_KEYS": "short", "STREAM_TOKEN_SECRET": SECRET}, "at least 16 characters"),
        ({"API_KEYS": f"{KEY},{KEY}", "STREAM_TOKEN_SECRET": SECRET}, "appears twice"),
        ({"API_KEYS_FILE": "/nonexistent/keys.toml", "STREAM_TOKEN_SECRET": SECRET}, "No such file"),
    ],
)
def test_misconfigured_keys_refuse_to_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str) -> None:
    with pytest.raises(AuthConfigError, match=says):
        load_keyring(settings(monkeypatch, **env))


def test_a_keys_file_limits_a_key_to_its_collections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    limited = "limited-key-long-enough"
    path = tmp_path / "keys.toml"
    digest = hashlib.sha256(limited.encode()).hexdigest()
    path.write_text(f'[[key]]\nname = "team"\nsha256 = "{digest}"\ncollections = ["team"]\n')
    ring = load_keyring(settings(monkeypatch, API_KEYS=KEY, API_KEYS_FILE=str(path), STREAM_TOKEN_SECRET=SECRET))
    team, unlimited = ring.principal_for(limited), ring.principal_for(KEY)
    assert team is not None and unlimited is not None and ring.principal_for("wrong-key-long-enough") is None
    assert team.may_use("team") and not team.may_use("other") and unlimited.may_use("other")
    assert team.owner == digest[:16] != unlimited.owner
    assert not team.may_see_job("j", unlimited.owner)


def test_no_keys_is_the_open_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = load_keyring(settings(monkeypatch))
    assert ring.open and ring.stream_secret is None


def test_a_stream_token_opens_its_job_until_it_expires() -> None:
    job = "a" * 32
    token = stream_tokens.issue(SECRET, job, 60)
    stream_tokens.verify(SECRET, token, job)
    for secret, tok, for_job, says in [
        (SECRET, token, "b" * 32, "another job"),
        ("x" + SECRET, token, job, "signature"),
        (SECRET, stream_tokens.sign(SECRET, job, int(time.time()) - 1), job, "expired"),
        (SECRET, token[:-2] + ("AA" if not token.endswith("AA") else "BB"), job, "signature"),
        (SECRET, "no-dot", job, "malformed"),
    ]:
        with pytest.raises(stream_tokens.TokenInvalid, match=says):
            stream_tokens.verify(secret, tok, for_job)
