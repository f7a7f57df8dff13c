"""A collection's term counts are updated in place: its term table leaves room in its pages (`TERM_FILLFACTOR`),
whether the collection is new or was made before migration 2."""

from __future__ import annotations

from shared.store.postgres_schema import TERM_FILLFACTOR, migrate
from shared.store.postgres_store import PostgresStore
from tests.store.test_search_indexes import _write


def _term_table_options(store: PostgresStore, name: str) -> list[str] | None:
    with store.pool.connection() as conn:
        row = conn.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN ragqueue.collections k ON c.relname = 'terms_' || k.id "
            "WHERE n.nspname = 'ragqueue' AND k.name = %s",
            (name,),
        ).fetchone()
    assert row is not None
    options: list[str] | None = row[0]
    return options


def test_a_new_collections_term_table_leaves_room_to_update_its_counts_in_place(pg: PostgresStore) -> None:
    _write(pg, "kb")
    assert _term_table_options(pg, "kb") == [f"fillfactor={TERM_FILLFACTOR}"]


def test_migration_2_gives_a_term_table_made_before_it_the_same_room(pg: PostgresStore) -> None:
    _write(pg, "older")
    with pg.pool.connection() as conn:  # as the table was before migration 2
        conn.execute("ALTER TABLE ragqueue.terms_1 RESET (fillfactor)")
        conn.execute("DELETE FROM ragqueue.schema_migrations WHERE version = 2")
    assert _term_table_options(pg, "older") is None
    with pg.pool.connection() as conn:
        assert migrate(conn) == [2]
    assert _term_table_options(pg, "older") == [f"fillfactor={TERM_FILLFACTOR}"]
