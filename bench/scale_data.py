"""Synthetic collections for bench/store_scale.py: real Chinese sentences recombined, vectors from a fake embedder.

The corpus's sentences (cut at 。！？；, newlines and table bars, kept when they hold at least four CJK
characters) are drawn at random with a fixed seed and concatenated into chunks of about 300–500 characters,
50 chunks per document. Each sentence is embedded once with the fake ZhipuAI server's embedder
(`harness/fakes/zhipu_vectors.py`: signed feature hashing of character unigrams and bigrams) at 384 dimensions,
the local model's size; a chunk's vector is the normalised sum of its sentences' vectors, which is what
hashing the chunk's own characters would give up to the bigrams that straddle two sentences. Questions are
the corpus's 24 hand-written questions followed by sentence fragments drawn from the corpus.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.fakes.zhipu_vectors import embed_text
from shared.store import ChunkRecord

DIMENSION = 384  # the offline multilingual-e5-small's dimension
CHUNKS_PER_DOCUMENT = 50
CHUNK_CHARS = (300, 500)
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n|\|")
_CJK = re.compile(r"[\u4e00-\u9fff]")
_MARKUP = re.compile(r"^[\s#>*\-+\d.、]+|[*`]+")


@dataclass(frozen=True)
class Document:
    doc_id: str
    source: str
    sha256: str
    chunks: list[ChunkRecord]
    vectors: np.ndarray


def corpus_sentences(corpus: Path) -> list[str]:
    """Distinct sentences of the corpus's text files with at least four CJK characters, in file order."""
    found: dict[str, None] = {}
    for path in sorted(corpus.rglob("*")):
        if path.suffix not in (".md", ".txt"):
            continue
        for raw in _SENTENCE_END.split(path.read_text(encoding="utf-8")):
            sentence = _MARKUP.sub("", raw).strip()
            if len(_CJK.findall(sentence)) >= 4 and len(sentence) <= 200:
                found[sentence] = None
    return list(found)


class SyntheticCorpus:
    """A deterministic, endless stream of documents made of the corpus's sentences, and questions about them."""

    def __init__(self, corpus: Path, seed: int) -> None:
        self.sentences = corpus_sentences(corpus)
        if len(self.sentences) < 100:
            raise ValueError(f"{corpus}: only {len(self.sentences)} usable sentences; need a Chinese corpus")
        self.sentence_vectors = np.array([embed_text(s, DIMENSION) for s in self.sentences], dtype=np.float32)
        self._lengths = np.array([len(s) for s in self.sentences])
        self.seed = seed

    def documents(self, prefix: str = "doc", chunks_per_document: int = CHUNKS_PER_DOCUMENT) -> Iterator[Document]:
        """Documents `prefix-0000000`, `prefix-0000001`, ...; the same seed gives the same stream."""
        for doc_id, picks in self.document_picks(prefix, chunks_per_document):
            chunks = [
                ChunkRecord(doc_id=doc_id, position=i, text=self.chunk_text(pick)) for i, pick in enumerate(picks)
            ]
            sha = document_sha256([c.text for c in chunks])
            yield Document(doc_id, f"{doc_id}.md", sha, chunks, self.chunk_vectors(picks))

    def document_picks(
        self, prefix: str = "doc", chunks_per_document: int = CHUNKS_PER_DOCUMENT
    ) -> Iterator[tuple[str, list[np.ndarray]]]:
        """The stream `documents` builds from: each document's id and, per chunk, its sentences' indices."""
        rng = np.random.default_rng([self.seed, int.from_bytes(prefix.encode()[:8], "little")])
        number = 0
        while True:
            yield f"{prefix}-{number:07d}", self._picks(rng, chunks_per_document)
            number += 1

    def _picks(self, rng: np.random.Generator, count: int) -> list[np.ndarray]:
        picks = []
        for _ in range(count):
            target = int(rng.integers(CHUNK_CHARS[0], CHUNK_CHARS[1] + 1))
            drawn = rng.integers(0, len(self.sentences), size=64)
            # Enough sentences to reach the target length (at least one).
            n = int(np.searchsorted(np.cumsum(self._lengths[drawn]), target)) + 1
            picks.append(drawn[: min(n, len(drawn))])
        return picks

    def chunk_text(self, pick: np.ndarray) -> str:
        return "".join(self.sentences[j] for j in pick)

    def chunk_vectors(self, picks: list[np.ndarray]) -> np.ndarray:
        """Each chunk's vector: the normalised sum of its sentences' vectors, float32."""
        vectors = np.stack([self.sentence_vectors[pick].sum(axis=0) for pick in picks])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32)

    def questions(self, questions_file: Path, count: int) -> list[str]:
        """The hand-written corpus questions, then sentence fragments (8–30 characters) up to `count`."""
        asked = [entry["question"] for entry in json.loads(questions_file.read_text(encoding="utf-8"))]
        rng = np.random.default_rng([self.seed, 7])
        while len(asked) < count:
            sentence = self.sentences[int(rng.integers(0, len(self.sentences)))]
            length = int(rng.integers(8, 31))
            start = int(rng.integers(0, max(1, len(sentence) - length)))
            asked.append(sentence[start : start + length])
        return asked[:count]


def document_sha256(texts: list[str]) -> str:
    """A synthetic document's content hash: its chunks' texts, one per line."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def embed_question(question: str) -> np.ndarray:
    return np.asarray(embed_text(question, DIMENSION), dtype=np.float32)
