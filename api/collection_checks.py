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
    built_with, _ = await run_in_threadpool(collection.embedding)
    _require_model(settings, collection.name, built_with)


async def check_queryable(settings: Settings, store: Store, collection: str) -> None:
    """The 404 or 409 of `existing_store` and `check_embedding_model`, from one read of the collection's model
    (a question asks it before it is queued; counting documents and chunks is not needed for that)."""
    try:
        built_with, _ = await run_in_threadpool(store.collection(collection).embedding)
    except LookupError:
        raise collection_not_found(collection) from None
    _require_model(settings, collection, built_with)


def _require_model(settings: Settings, collection: str, built_with: str) -> None:
    model = embedding_model_name(settings)
    if built_with != model:
        raise ApiError(
            409,
            "embedding_mismatch",
            f"collection {collection!r} was built with {built_with} but this server embeds with {model} "
            "(EMBED_PROVIDER); query it with that model, or index into another collection",
        )


async def check_can_add(settings: Settings, store: Store, collection: str) -> None:
    """Adding documents is fine to a new collection, or to one built with this deployment's model."""
    found = store.collection(collection)
    if await run_in_threadpool(found.exists):
        await check_embedding_model(settings, found)
