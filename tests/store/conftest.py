"""Both engines behind one fixture, so every contract test runs against the embedded store and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import PostgresServer
from shared.store import Store
from shared.store.postgres_store import PostgresStore
from shared.store.sqlite_store import SQLiteStore

ENGINES = ["sqlite", "postgresql"]


def open_engine(engine: str, tmp_path: Path, postgres: PostgresServer | None) -> Store:
    if engine == "sqlite":
        return SQLiteStore(tmp_path / "collections", tmp_path / "uploads")
    assert postgres is not None
    return PostgresStore(postgres.fresh_database("contract"), tmp_path / "uploads", pool_size=4)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    postgres = request.getfixturevalue("postgres_server") if engine == "postgresql" else None
    opened = open_engine(engine, tmp_path, postgres)
    yield opened
    opened.close()


@pytest.fixture
def pg(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[PostgresStore]:
    """PostgreSQL alone, for what only that engine has (search indexes, term tables)."""
    opened = open_engine("postgresql", tmp_path, postgres_server)
    assert isinstance(opened, PostgresStore)
    yield opened
    opened.close()


@pytest.fixture
def second_process_store(engine: str, store: Store, tmp_path: Path) -> Iterator[Store]:
    """Another process's view of the same store (its own objects, caches and connections)."""
    if isinstance(store, PostgresStore):
        other: Store = PostgresStore(store.url, tmp_path / "uploads-2", pool_size=2)
    else:
        other = SQLiteStore(tmp_path / "collections", tmp_path / "uploads")
    yield other
    other.close()
