"""Re-read API_KEYS_FILE without a restart: on SIGHUP, and when the file changes (checked every KEYS_FILE_POLL_S).

Deliberate choices:
- A new file goes through the checks of start-up (`load_keyring`). One that fails them is refused with an error
  log naming the problem, and the keys in force stay: a bad edit neither opens the API nor locks everyone out.
- The keyring is replaced by one assignment to `app.state.keyring`: a request already authenticated keeps the
  principal it got, the next one sees the whole new file, never half of it.
- SIGHUP through `loop.add_signal_handler`: uvicorn's server handles only SIGINT and SIGTERM (uvicorn/server.py,
  HANDLED_SIGNALS), so SIGHUP reaches this handler; without it, SIGHUP's default action would end the process.
  With `--workers N` the SIGHUP for uvicorn's main process is uvicorn's own: it replaces its worker processes
  one by one, each reading the file at start, and keeps an old one whose replacement refuses the file.
- A change is a new (mtime, size, inode) of the file, taken before it is read: a write landing after the read
  changes it again and is read at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from starlette.datastructures import State

from api.auth import AuthConfigError, load_keyring
from shared.settings import Settings

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None  # None: the file cannot be stat'ed (deleted, unreadable folder)


@asynccontextmanager
async def keyring_reloads(state: State, settings: Settings) -> AsyncIterator[None]:
    """While open, `state.keyring` follows API_KEYS_FILE; nothing to do when there is no such file."""
    path = settings.API_KEYS_FILE
    if path is None:
        yield
        return
    loop = asyncio.get_running_loop()
    hangup = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, hangup.set)
    task = asyncio.create_task(_follow(state, settings, path, hangup), name="keys-file-reload")
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


async def _follow(state: State, settings: Settings, path: Path, hangup: asyncio.Event) -> None:
    seen = _signature(path)  # the file start-up read
    poll = settings.KEYS_FILE_POLL_S or None  # 0: on SIGHUP only
    while True:
        try:
            await asyncio.wait_for(hangup.wait(), timeout=poll)
            hangup.clear()
            why = "SIGHUP"
        except TimeoutError:
            why = ""
        now = _signature(path)
        if not why:
            if now == seen:
                continue
            why = "the file changed"
        seen = now
        try:
            ring = await asyncio.to_thread(load_keyring, settings)
        except AuthConfigError as exc:
            log.error("API_KEYS_FILE not reloaded (%s), the keys in force stay: %s", why, exc)
            continue
        except Exception as exc:  # a failure of ours must not end the reloads for the life of the process
            log.error("API_KEYS_FILE not reloaded (%s), the keys in force stay: %s: %s", why, type(exc).__name__, exc)
            continue
        state.keyring = ring
        log.info("API_KEYS_FILE reloaded (%s): %d key(s) in force", why, len(ring.entries))
