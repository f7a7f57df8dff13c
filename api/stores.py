"""Opening a collection's store from a request, with the 404 a person can act on."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from shared.providers.identity import embedding_model_name
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


async def check_embedding_model(settings: Settings, store: CollectionStore) -> None:
    """409 when the collection was built with another embedding model than this deployment's."""
    info = await run_in_threadpool(store.info)
    model = embedding_model_name(settings)
    if info.embed_model != model:
        raise ApiError(
            409,
            "embedding_mismatch",
            f"collection {store.name!r} was built with {info.embed_model} but this server embeds with {model} "
            "(EMBED_PROVIDER); query it with that model, or index into another collection",
        )


async def check_can_add(settings: Settings, collection: str) -> None:
    """Adding documents is fine to a new collection, or to one built with this deployment's model."""
    store = CollectionStore(settings.collections_dir, collection)
    if await run_in_threadpool(store.exists):
        await check_embedding_model(settings, store)
