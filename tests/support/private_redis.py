"""A redis-server of a test's own, on its own port, that the test may stop and start again.

Never the machine's Redis on 6379: other test sessions use it. Data goes to an append-only file, so a restart
keeps the job records and queued messages, as a production Redis with persistence would.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness.processes import _wait, free_port, redis_answers


@dataclass
class PrivateRedis:
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
        self.process = subprocess.Popen(
            ["redis-server", *args, "--dir", str(self.folder)],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait(lambda: redis_answers(self.url()), 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits; clients see their connections close."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
