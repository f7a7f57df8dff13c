"""Opening a collection's store from a request, with the 404 a person can act on."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from shared.settings import Settings
from shared.store import CollectionStore


async def existing_store(settings: Settings, collection: str) -> CollectionStore:
    """The collection's store, or a 404 that says how to create it."""
    store = CollectionStore(settings.collections_dir, collection)
    if not await run_in_threadpool(store.exists):
        raise ApiError(
            404,
            "collection_not_found",
            f"collection {collection!r} does not exist; index documents into it first "
            f"(POST /v1/collections/{collection}/documents or /index-jobs)",
        )
    return store
