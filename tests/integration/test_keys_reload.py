"""API_KEYS_FILE in a real API process: a misspelt field stops it at start; a running one re-reads the file on
SIGHUP and when it changes, and keeps its keys when the new file is refused (api/keyring_reload.py).

No workers: `GET /v1/jobs` checks the key and answers from Redis alone.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import local_http
from harness.processes import BIN, Process, RedisServer, free_port, run_program, start_program
from tests.conftest import stack_env

pytestmark = pytest.mark.integration

KEY_A = f"key-a-{secrets.token_urlsafe(24)}"
KEY_B = f"key-b-{secrets.token_urlsafe(24)}"
SECRET = secrets.token_hex(32)


def keys_text(*keys: str, extra: str = "") -> str:
    return "".join(f'[[key]]\nname = "k{n}"\nkey = "{key}"\n{extra}' for n, key in enumerate(keys))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Api:
    url: str
    process: Process
    log: Path
    keys: Path

    def status(self, key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return local_http.get(f"{self.url}/v1/jobs", headers=headers, timeout=10).status_code

    def hangup(self) -> None:
        assert self.process.poll() is None, f"the API exited with {self.process.returncode}: {self.log.read_text()}"
        self.process.send_signal(signal.SIGHUP)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()


@contextmanager
def running_api(redis_server: RedisServer, tmp_path: Path, poll_s: str) -> Iterator[Api]:
    keys = tmp_path / "keys.toml"
    keys.write_text(keys_text(KEY_A))
    env = stack_env(redis_server, "keys-reload", tmp_path)
    env.update(API_KEYS_FILE=str(keys), STREAM_TOKEN_SECRET=SECRET, KEYS_FILE_POLL_S=poll_s)
    port = free_port()
    log = tmp_path / "api.log"
    args = [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = start_program(args, env, log)
    api = Api(f"http://127.0.0.1:{port}", process, log, keys)

    def up() -> bool:
        assert process.poll() is None, f"the API exited with {process.returncode}: {log.read_text()}"
        try:
            return local_http.get(f"{api.url}/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, "the API to answer /healthz", timeout=60)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_a_misspelt_field_stops_the_api_at_start_naming_file_table_and_field(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\nname = "hr"\nkey = "{KEY_A}"\ncollection = ["hr"]\n')  # for `collections`
    env = {**os.environ, "API_KEYS_FILE": str(keys), "STREAM_TOKEN_SECRET": SECRET, "DATA_DIR": str(tmp_path)}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # never reached: the keys are checked first
    args = [str(BIN / "uvicorn"), "api.main:app", "--port", "0", "--log-level", "warning"]
    done = run_program(args, env)
    assert done.returncode == 3, done.stderr
    [line] = [x for x in done.stderr.splitlines() if "cannot start" in x]
    assert str(keys) in line and '[[key]] #1 ("hr"), field `collection`: unknown field' in line
    assert "Traceback" not in done.stderr and KEY_A not in done.stderr


def test_a_key_added_to_the_file_works_after_sighup(redis_server: RedisServer, tmp_path: Path) -> None:
    with running_api(redis_server, tmp_path, poll_s="0") as api:  # no polling: only the signal can reload
        assert (api.status(KEY_A), api.status(KEY_B)) == (200, 401)
        api.keys.write_text(keys_text(KEY_A, KEY_B))
        assert api.status(KEY_B) == 401
        api.hangup()
        wait_for(lambda: api.status(KEY_B) == 200, "the key added to the file to work after SIGHUP")
        assert api.status(KEY_A) == 200 and api.process.poll() is None


def test_a_bad_file_is_refused_and_the_old_keys_stay(redis_server: RedisServer, tmp_path: Path) -> None:
    with running_api(redis_server, tmp_path, poll_s="0") as api:
        assert api.status(KEY_A) == 200
        # A misspelt `collections` in each table: taking the file would give both keys every collection.
        api.keys.write_text(keys_text(KEY_A, KEY_B, extra='collection = ["hr"]\n'))
        api.hangup()
        wait_for(lambda: api.logged("API_KEYS_FILE not reloaded (SIGHUP), the keys in force stay"), "the refusal")
        [line] = [x for x in api.log.read_text().splitlines() if "not reloaded" in x]
        assert str(api.keys) in line and '[[key]] #1 ("k0"), field `collection`: unknown field' in line
        assert (api.status(KEY_A), api.status(KEY_B)) == (200, 401)
        assert KEY_A not in api.log.read_text()


def test_a_changed_file_takes_effect_without_a_signal(redis_server: RedisServer, tmp_path: Path) -> None:
    with running_api(redis_server, tmp_path, poll_s="0.2") as api:
        assert (api.status(KEY_A), api.status(KEY_B)) == (200, 401)
        api.keys.write_text(keys_text(KEY_B))  # KEY_A removed, KEY_B added
        wait_for(lambda: api.status(KEY_B) == 200, "the changed file to be read at the next poll")
        assert api.status(KEY_A) == 401
        api.keys.write_text("[[key]]\n")  # refused: the keys in force stay
        wait_for(lambda: api.logged("not reloaded (the file changed)"), "the changed, bad file to be refused")
        assert (api.status(KEY_A), api.status(KEY_B)) == (401, 200)
