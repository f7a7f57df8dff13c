"""Deterministic bag-of-characters embeddings for the fake ZhipuAI server.

Each text is mapped to a fixed-length vector by feature hashing its character
unigrams (weight 0.5) and bigrams (weight 1.0) with a stable hash (blake2b, so
vectors are identical across processes and runs), each feature contributing
+/-w to one bucket (signed hashing keeps unrelated texts near zero similarity).
The result is L2-normalised, so the dot product is the cosine similarity and
texts sharing Chinese characters/words score higher than unrelated ones.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

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


def _bucket(feature: str, dim: int) -> int:
    """The feature's bucket and sign packed in one int: bucket * 2, plus 1 when the sign is negative."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return ((value >> 1) % dim) * 2 + (0 if value & 1 else 1)


# A feature's bucket is a pure function of it, so it is remembered per dimension: the fake runs on the cores of the
# stack it serves (bench/index_throughput.py), and hashing every feature of every text cost ~1 ms of CPU per
# 500-character text. Characters and bigrams of real text are far fewer than their occurrences.
_BUCKETS: dict[int, dict[str, int]] = {}
_SIGNS = np.array([1.0, -1.0])


def embed_text(text: str, dim: int = EMBEDDING_2_DIM) -> list[float]:
    """Return a unit-length vector of length `dim` for `text` (e1 for empty text)."""
    out: list[float] = embedding_array(text, dim).tolist()
    return out


# A text's vector is remembered too (a read-only array, 8 KB at 1024 dimensions): the index benchmark sends the
# same corpus texts once per copy, and the fake's CPU is taken from the cores of the stack it measures.
@functools.lru_cache(maxsize=4096)
def embedding_array(text: str, dim: int = EMBEDDING_2_DIM) -> np.ndarray:
    """`embed_text` as a float64 array (serialised by orjson's numpy option to the same JSON as the list)."""
    known = _BUCKETS.setdefault(dim, {})
    chars = [c for c in text.lower() if not c.isspace()]
    # Every unigram (weight 0.5), then every bigram (weight 1.0), in text order.
    features = chars + [a + b for a, b in zip(chars, chars[1:], strict=False)]
    vec: np.ndarray[Any, np.dtype[np.float64]]
    if not features:
        vec = np.zeros(dim)
        vec[0] = 1.0
    else:
        packed = np.fromiter(
            (known[f] if f in known else known.setdefault(f, _bucket(f, dim)) for f in features),
            dtype=np.intp,
            count=len(features),
        )
        weights = np.full(len(features), BIGRAM_WEIGHT)
        weights[: len(chars)] = UNIGRAM_WEIGHT
        # bincount adds each weight to its bin in input order, as a Python loop would: the same sums, bit for bit.
        vec = np.bincount(packed >> 1, weights=_SIGNS[packed & 1] * weights, minlength=dim)  # type: ignore[assignment]
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
        else:
            vec /= norm
    vec.flags.writeable = False
    return vec
