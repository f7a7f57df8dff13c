"""Open the deployment's store: PostgreSQL when VECTOR_STORE_URL is set, else the embedded SQLite engine."""

from __future__ import annotations

from shared.settings import Settings
from shared.store.base import Store
from shared.store.keywords import DEFAULT_POSTINGS_BUDGET


def check_store(settings: Settings) -> None:
    """Stop a process at start, before it forks or serves, when its store cannot work (one clear line)."""
    if settings.VECTOR_STORE_URL:
        from shared.store.postgres_store import check_database

        check_database(settings.VECTOR_STORE_URL)


def open_store(settings: Settings) -> Store:
    """The configured store, checked; raises StoreUnavailableError with one line naming the problem."""
    if settings.VECTOR_STORE_URL:
        # psycopg is needed only for this engine
        from shared.store.postgres_store import POSTGRES_POSTINGS_BUDGET, PostgresStore

        return PostgresStore(
            settings.VECTOR_STORE_URL,
            settings.uploads_dir,
            pool_size=settings.STORE_POOL_SIZE,
            ef_search=settings.HNSW_EF_SEARCH,
            index_build_memory_mb=settings.PG_INDEX_BUILD_MEMORY_MB,
            postings_budget=settings.KEYWORD_POSTINGS_BUDGET or POSTGRES_POSTINGS_BUDGET,
        )
    from shared.store.sqlite_store import SQLiteStore

    return SQLiteStore(
        settings.collections_dir, settings.uploads_dir, settings.KEYWORD_POSTINGS_BUDGET or DEFAULT_POSTINGS_BUDGET
    )
