"""`keyed_api`: a second API process on the offline stack's Redis, store and workers, with API keys on.

One extra uvicorn process instead of a whole stack: the offline stack's Celery workers serve it, as they
would serve a second `make up` API replica.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from harness import local_http
from harness.processes import BIN, Process, Stack, free_port
from tests.support.browser import launch_chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser

LIMITED_TO = "auth-lim"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for a module's browser tests. Not for the session: Playwright's sync API keeps an
    event loop running on the main thread while it is open, and later tests' `asyncio.run()` would fail."""
    with launch_chromium() as launched:
        yield launched


@dataclass(frozen=True)
class KeyedApi:
    url: str
    key_a: str
    key_b: str
    limited_key: str  # from API_KEYS_FILE, stored there as its sha256, limited to LIMITED_TO
    stream_secret: str

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return local_http.client(base_url=self.url, headers=headers, timeout=httpx.Timeout(10.0, read=60.0))


def _keys_file(folder: Path, limited_key: str) -> Path:
    digest = hashlib.sha256(limited_key.encode()).hexdigest()
    path = folder / "api-keys.toml"
    path.write_text(f'[[key]]\nname = "limited"\nsha256 = "{digest}"\ncollections = ["{LIMITED_TO}"]\n')
    return path


def wait_ready(url: str, what: str, process: Process) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"{what} exited with {process.returncode} (see its log)"
        try:
            if local_http.get(f"{url}/readyz", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} did not become ready"
        time.sleep(0.3)


@pytest.fixture(scope="session")
def keyed_api(offline_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedApi]:
    api = KeyedApi(
        url="",
        key_a=f"key-a-{secrets.token_urlsafe(24)}",
        key_b=f"key-b-{secrets.token_urlsafe(24)}",
        limited_key=f"key-l-{secrets.token_urlsafe(24)}",
        stream_secret=secrets.token_hex(32),
    )
    name = "api-keys"
    offline_stack.env_for[name] = {
        "API_KEYS": f"{api.key_a}, {api.key_b}",
        "API_KEYS_FILE": str(_keys_file(tmp_path_factory.mktemp("keys"), api.limited_key)),
        "STREAM_TOKEN_SECRET": api.stream_secret,
    }
    port = free_port()
    process = offline_stack.spawn(
        name,
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, "the API process with keys on", process)
    yield KeyedApi(url, api.key_a, api.key_b, api.limited_key, api.stream_secret)
    offline_stack.stop(name)
