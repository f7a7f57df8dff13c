"""The keys file fails closed: every rule of API_KEYS_FILE refuses the file, naming the file, table and field.

A rule the file breaks must stop the keyring from being built (the API then refuses to start, or keeps its old
keys on a reload): a field that is ignored instead would give a key more than its table says.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.auth import AuthConfigError, load_keyring
from shared.key_limits import LIMIT_NAMES as LIMITS
from shared.key_limits import KeyLimits
from shared.keys_file import KeysFileError, load_keys_file
from shared.settings import Settings

KEY = "a-key-long-enough-0001"
OTHER = "b-key-long-enough-0002"
SECRET = "0f3a9c1e7b2d4f6a8c0e2b4d6f8a1c3e"
DIGEST = hashlib.sha256(OTHER.encode()).hexdigest()


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def settings(monkeypatch: pytest.MonkeyPatch, path: Path, **env: str) -> Settings:
    for name in ("API_KEYS", "STREAM_TOKEN_SECRET") + tuple(f"KEY_{limit.upper()}" for limit in LIMITS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("API_KEYS_FILE", str(path))
    monkeypatch.setenv("STREAM_TOKEN_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # A misspelt `collections` would otherwise give the key every collection.
        (f'[[key]]\nkey = "{KEY}"\ncollection = ["hr"]\n', "[[key]] #1, field `collection`: unknown field"),
        (f'[[key]]\nkey = "{KEY}"\nrequests_per_mnute = 4\n', "field `requests_per_mnute`: unknown field"),
        (f'[[keys]]\nkey = "{KEY}"\n', "top-level `keys`: unknown table"),
        (f'[[key]]\nkey = "{KEY}"\n[limits]\nrpm = 1\n', "top-level `limits`: unknown table"),
        (f'[[key]]\nkey = "{KEY}"\ncollections = "hr"\n', "field `collections`: Input should be a valid list"),
        (f'[[key]]\nkey = "{KEY}"\ncollections = ["hr", 2]\n', "field `collections`: Input should be a valid string"),
        (f'[[key]]\nkey = "{KEY}"\nadmin = "yes"\n', "field `admin`: Input should be a valid boolean"),
        (f'[[key]]\nkey = "{KEY}"\nadmin = 1\n', "field `admin`: Input should be a valid boolean"),
        (f'[[key]]\nkey = "{KEY}"\nmax_streams = "4"\n', "field `max_streams`: Input should be a valid integer"),
        (f'[[key]]\nkey = "{KEY}"\nmax_streams = true\n', "field `max_streams`: Input should be a valid integer"),
        (f'[[key]]\nkey = "{KEY}"\ntokens_per_day = 1.5\n', "field `tokens_per_day`: Input should be a valid integer"),
        (f'[[key]]\nkey = "{KEY}"\nname = ""\n', "field `name`: String should have at least 1 character"),
        ("[[key]]\nkey = 12345678901234567890\n", "field `key`: Input should be a valid string"),
        (f'[[key]]\nkey = "{KEY}"\nsha256 = "{DIGEST}"\n', "[[key]] #1: give exactly one of `key` or `sha256`"),
        ('[[key]]\nname = "nobody"\n', '[[key]] #1 ("nobody"): give exactly one of `key` or `sha256`'),
        ('[[key]]\nsha256 = "9f86d08"\n', "field `sha256`: must be 64 hex digits"),
        (f'[[key]]\nsha256 = "{DIGEST[:-1]}z"\n', "field `sha256`: must be 64 hex digits"),
        ("", "holds no [[key]] table"),
        ("key = []\n", "holds no [[key]] table"),
        ('key = "just-a-string"\n', "`key`: Input should be a valid list"),
        ("[[key\n", "API_KEYS_FILE"),  # not TOML: tomllib's own message, after the file's name
    ]
    + [
        (f'[[key]]\nkey = "{KEY}"\n{limit} = 0\n', f"field `{limit}`: Input should be greater than") for limit in LIMITS
    ],
)
def test_a_file_breaking_a_rule_is_refused_naming_the_file_table_and_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, says: str
) -> None:
    path = keys_file(tmp_path, text)
    with pytest.raises(KeysFileError) as refused:
        load_keys_file(path)
    assert str(refused.value).startswith(f"API_KEYS_FILE {path}") and says in str(refused.value)
    with pytest.raises(AuthConfigError, match="API_KEYS_FILE"):
        load_keyring(settings(monkeypatch, path))


def test_a_file_that_is_not_utf8_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_bytes(b'[[key]]\nname = "caf\xe9"\nkey = "a-key-long-enough-0001"\n')  # Latin-1, not UTF-8
    with pytest.raises(AuthConfigError, match=f"API_KEYS_FILE {path}: not UTF-8 text"):
        load_keyring(settings(monkeypatch, path))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[[key]]\nkey = "short-key"\n', "[[key]] #1, field `key`: every key must be at least 16 characters"),
        ('[[key]]\nkey = " a-key-long-enough-0001"\n', "field `key`: every key must be at least 16 characters"),
        (
            f'[[key]]\nkey = "{OTHER}"\n[[key]]\nsha256 = "{DIGEST.upper()}"\n',
            "[[key]] #2: a key appears twice (also in API_KEYS_FILE",
        ),
        (f'[[key]]\nkey = "{KEY}"\n', "[[key]] #1: a key appears twice (also in API_KEYS)"),
        (
            f'[[key]]\nkey = "{OTHER}"\nname = "team"\n[[key]]\nkey = "c-key-long-enough-0003"\nname = "team"\n',
            '[[key]] #2, field `name`: "team" is already the name of [[key]] #1',
        ),
    ],
)
def test_keys_and_names_the_keyring_cannot_tell_apart_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, says: str
) -> None:
    path = keys_file(tmp_path, text)
    with pytest.raises(AuthConfigError) as refused:
        load_keyring(settings(monkeypatch, path, API_KEYS=KEY))
    assert str(refused.value).startswith(f"API_KEYS_FILE {path}") and says in str(refused.value)
    assert KEY not in str(refused.value) and OTHER not in str(refused.value)  # a key never reaches a log line


def test_each_table_becomes_a_principal_with_its_collections_admin_and_limits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = keys_file(
        tmp_path,
        f'[[key]]\nname = "ops"\nkey = "{OTHER}"\nadmin = true\nrequests_per_minute = 7\nmax_streams = 2\n'
        f'[[key]]\nname = "hr"\nsha256 = "{hashlib.sha256(b"c-key-long-enough-0003").hexdigest()}"\n'
        'collections = ["hr"]\n',
    )
    ring = load_keyring(settings(monkeypatch, path, API_KEYS=KEY, KEY_QUESTIONS_PER_DAY="50", KEY_MAX_STREAMS="5"))
    listed, ops, hr = ring.principal_for(KEY), ring.principal_for(OTHER), ring.principal_for("c-key-long-enough-0003")
    assert listed is not None and ops is not None and hr is not None
    defaults = KeyLimits(max_streams=5, questions_per_day=50)
    assert (listed.name, listed.admin, listed.collections, listed.limits) == (None, False, None, defaults)
    assert (ops.name, ops.admin, ops.collections) == ("ops", True, None)
    assert ops.limits == KeyLimits(requests_per_minute=7, max_streams=2, questions_per_day=50)
    assert (hr.name, hr.admin, hr.collections, hr.limits) == ("hr", False, frozenset({"hr"}), defaults)
    assert hr.may_use("hr") and not hr.may_use("finance") and not hr.may_see_job("j", ops.owner)
