"""Deterministic bag-of-characters embeddings for the fake ZhipuAI server.

Each text is mapped to a fixed-length vector by feature hashing its character
unigrams (weight 0.5) and bigrams (weight 1.0) with a stable hash (blake2b, so
vectors are identical across processes and runs), each feature contributing
+/-w to one bucket (signed hashing keeps unrelated texts near zero similarity).
The result is L2-normalised, so the dot product is the cosine similarity and
texts sharing Chinese characters/words score higher than unrelated ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np

EMBEDDING_2_DIM = 1024
DEFAULT_DIM_OTHER_MODELS = 2048  # embedding-3's default output size
UNIGRAM_WEIGHT = 0.5
BIGRAM_WEIGHT = 1.0


def dimension_for(model: str, requested: int | None) -> int:
    """embedding-2 is fixed at 1024; other models honour `dimensions` when given."""
    if model == "embedding-2" or not requested:
        return EMBEDDING_2_DIM if model == "embedding-2" else DEFAULT_DIM_OTHER_MODELS
    return int(requested)


def _features(text: str) -> Iterator[tuple[str, float]]:
    chars = [c for c in text.lower() if not c.isspace()]
    for c in chars:
        yield c, UNIGRAM_WEIGHT
    for a, b in zip(chars, chars[1:], strict=False):
        yield a + b, BIGRAM_WEIGHT


def _bucket(feature: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dim, (1.0 if value & 1 else -1.0)


def embed_text(text: str, dim: int = EMBEDDING_2_DIM) -> list[float]:
    """Return a unit-length vector of length `dim` for `text` (e1 for empty text)."""
    vec = np.zeros(dim, dtype=np.float64)
    for feature, weight in _features(text):
        index, sign = _bucket(feature, dim)
        vec[index] += sign * weight
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
    else:
        vec /= norm
    out: list[float] = vec.tolist()
    return out
