"""The embedded store's vectors: after a write, the next query reads only the rows written."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from shared.store import ChunkRecord
from shared.store.sqlite_store import SQLiteStore
from shared.store.vector_cache import VectorCache


def _doc(store: SQLiteStore, doc: str, n: int, seed: int) -> None:
    v = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    chunks = [ChunkRecord(doc, i, f"{doc} 段落 {i}") for i in range(n)]
    store.collection("c").replace_document(doc, f"{doc}.md", doc, chunks, v / np.linalg.norm(v, axis=1)[:, None])


def _reads(cache: VectorCache, path: Path) -> list[str]:
    """The statements one refresh ran, with their bound values expanded."""
    conn = sqlite3.connect(path, isolation_level=None)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    cache.refresh(conn)
    conn.close()
    return [s for s in seen if s.startswith("SELECT")]


def test_a_write_is_read_as_the_rows_written_and_a_removal_as_a_mask(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "collections", tmp_path / "uploads")
    store.collection("c").ensure("m", 8)
    _doc(store, "a", 300, 1)
    path = store.collection("c").path
    cache = VectorCache(8, "gen")
    _reads(cache, path)
    assert _reads(cache, path) == ["SELECT name, seq FROM sqlite_sequence"]  # nothing new: one tiny read

    _doc(store, "b", 2, 2)
    reads = _reads(cache, path)
    assert "SELECT seq, embedding FROM chunks WHERE seq > 300 ORDER BY seq" in reads  # only the two new rows

    store.collection("c").delete_document("a")
    assert any(r.startswith("SELECT chunk_seq FROM removed WHERE seq > 0") for r in _reads(cache, path))
    conn = sqlite3.connect(path, isolation_level=None)
    query = np.random.default_rng(2).normal(size=8).astype(np.float32)
    found = cache.search(conn, query, 10)
    conn.close()
    assert sorted(seq for seq, _ in found) == [301, 302]  # the removed document's rows never come back
