"""Opening a collection from a request, with the 404 and 409 a person can act on."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from api.errors import ApiError
from shared.providers.identity import embedding_model_name
from shared.settings import Settings
from shared.store import CollectionStore, Store


def collection_not_found(collection: str) -> ApiError:
    """The 404 for a missing collection, and for one the caller's key may not use (api/auth.py): the same answer."""
    return ApiError(
        404,
        "collection_not_found",
        f"collection {collection!r} does not exist; index documents into it first "
        f"(POST /v1/collections/{collection}/documents or /index-jobs)",
    )


async def existing_store(store: Store, collection: str) -> CollectionStore:
    """The collection, or a 404 that says how to create it."""
    found = store.collection(collection)
    if not await run_in_threadpool(found.exists):
        raise collection_not_found(collection)
    return found


async def check_embedding_model(settings: Settings, collection: CollectionStore) -> None:
    """409 when the collection was built with another embedding model than this deployment's."""
    info = await run_in_threadpool(collection.info)
    model = embedding_model_name(settings)
    if info.embed_model != model:
        raise ApiError(
            409,
            "embedding_mismatch",
            f"collection {collection.name!r} was built with {info.embed_model} but this server embeds with {model} "
            "(EMBED_PROVIDER); query it with that model, or index into another collection",
        )


async def check_can_add(settings: Settings, store: Store, collection: str) -> None:
    """Adding documents is fine to a new collection, or to one built with this deployment's model."""
    found = store.collection(collection)
    if await run_in_threadpool(found.exists):
        await check_embedding_model(settings, found)
