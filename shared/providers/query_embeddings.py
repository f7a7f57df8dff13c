"""Several questions embedded at once: one request where the embedding model takes a list."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from llama_index.core.base.embeddings.base import BaseEmbedding


@runtime_checkable
class QueryBatchEmbedding(Protocol):
    def get_query_embeddings(self, queries: list[str]) -> list[list[float]]:
        """The query embeddings of `queries`, in order, from as few model calls as the model allows."""
        ...


def embed_queries(model: BaseEmbedding, queries: list[str]) -> list[list[float]]:
    """The embeddings of `queries` in order: together where the model can, else one at a time."""
    if isinstance(model, QueryBatchEmbedding):
        return model.get_query_embeddings(queries)
    return [model.get_query_embedding(query) for query in queries]
