"""One open read connection per thread to a SQLite file, reopened when the file is replaced.

Opening a connection costs far more than a question's reads: SQLite parses the whole schema (the FTS5 tables
and triggers included) on a connection's first statement, about 0.45 ms here, and a question used to open
three (the collection's model, the vector search, the keyword search). A thread keeps its connection and
checks, with one `stat`, that the path still names the file it opened: another process may have dropped the
collection and created it again, and an open connection would go on reading the deleted file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

FileIdentity = tuple[int, int, int]


def file_identity(path: Path) -> FileIdentity:
    """What tells this file from another one later created at the same path; FileNotFoundError if none is."""
    stat = os.stat(path)
    # A new file may reuse a deleted one's inode number; its change time then still differs.
    return stat.st_dev, stat.st_ino, stat.st_ctime_ns


class ThreadReaders:
    """Hands each thread its own connection to `path`, opened by `open_connection` when missing or stale."""

    def __init__(self, path: Path, open_connection: Callable[[], sqlite3.Connection]) -> None:
        self.path = path
        self._open = open_connection
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        """This thread's connection to the file now at `path`; FileNotFoundError when there is none."""
        identity = file_identity(self.path)
        held: tuple[FileIdentity, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is not None and held[0] == identity:
            return held[1]
        self.release()
        conn = self._open()
        # The identity seen before opening: if the file changed meanwhile (replaced, or upgraded by this very
        # open), the next call opens again rather than trusting a connection to an older file.
        self._local.held = (identity, conn)
        return conn

    def release(self) -> None:
        """Close this thread's connection, if it has one (other threads close theirs when they next look)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held[1].close()
