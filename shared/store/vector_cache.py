"""A process's in-memory copy of one embedded collection's vectors, kept current by reading only changes.

The embedded engine gives every chunk a sequence number (`chunks.seq`, AUTOINCREMENT, so never reused) and
logs every removed chunk's number in `removed` (by a trigger). A reader remembers the last of each it has
seen; before a search it appends the chunks written since and masks those removed since. A write therefore
costs the next query only the rows it wrote, never a reload of the collection.

Deliberate choices:
- The matrix grows by doubling, so appending n rows costs O(n) amortised, not a copy of the whole matrix.
- Removed rows are masked, then dropped from memory once they are a quarter of the rows: an in-memory
  compaction, still without reading the collection again.
- Brute-force cosine over the matrix: at 100k x 384 floats it is a few milliseconds of BLAS, exact, and needs
  no index to maintain; past that, PostgreSQL with HNSW is the engine to use (docs/operations.md).
"""

from __future__ import annotations

import sqlite3
import threading

import numpy as np

_COMPACT_FRACTION = 0.25


class VectorCache:
    """Vectors of one collection, refreshed incrementally from its SQLite file; safe to share between threads."""

    def __init__(self, dimension: int, generation: str) -> None:
        self.dimension = dimension
        self.generation = generation  # the collection file's creation stamp: a re-created file starts over
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, dimension), dtype=np.float32)
        self._seqs = np.zeros(0, dtype=np.int64)  # ascending, one per matrix row
        self._alive = np.zeros(0, dtype=bool)
        self._rows = 0
        self._dead = 0
        self._last_seq = 0
        self._last_removed = 0

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Take in what writers committed since the last refresh (one read transaction, so a consistent view)."""
        conn.execute("BEGIN")
        try:
            counters = dict(conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
            if counters.get("chunks", 0) > self._last_seq:
                rows = conn.execute(
                    "SELECT seq, embedding FROM chunks WHERE seq > ? ORDER BY seq", (self._last_seq,)
                ).fetchall()
                self._append(rows)
                self._last_seq = int(counters["chunks"])
            if counters.get("removed", 0) > self._last_removed:
                gone = conn.execute("SELECT chunk_seq FROM removed WHERE seq > ?", (self._last_removed,)).fetchall()
                self._mask(np.fromiter((g[0] for g in gone), dtype=np.int64, count=len(gone)))
                self._last_removed = int(counters["removed"])
        finally:
            conn.execute("COMMIT")

    def _append(self, rows: list[tuple[int, bytes]]) -> None:
        if not rows:
            return
        new = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(-1, self.dimension)
        needed = self._rows + len(rows)
        if needed > len(self._matrix):
            capacity = max(needed, 2 * len(self._matrix), 1024)
            grown = np.zeros((capacity, self.dimension), dtype=np.float32)
            grown[: self._rows] = self._matrix[: self._rows]
            self._matrix = grown
            self._seqs = np.resize(self._seqs, capacity)
            self._alive = np.resize(self._alive, capacity)
        self._matrix[self._rows : needed] = new
        self._seqs[self._rows : needed] = [r[0] for r in rows]
        self._alive[self._rows : needed] = True
        self._rows = needed

    def _mask(self, removed: np.ndarray) -> None:
        seqs = self._seqs[: self._rows]
        at = np.searchsorted(seqs, removed)
        found = at[(at < self._rows) & (seqs[np.minimum(at, max(self._rows - 1, 0))] == removed)]
        newly = found[self._alive[found]]
        self._alive[newly] = False
        self._dead += len(newly)
        if self._dead > _COMPACT_FRACTION * self._rows:
            keep = np.flatnonzero(self._alive[: self._rows])
            self._matrix = self._matrix[keep].copy()
            self._seqs = self._seqs[keep].copy()
            self._alive = np.ones(len(keep), dtype=bool)
            self._rows, self._dead = len(keep), 0

    def search(self, conn: sqlite3.Connection, query: np.ndarray, top_k: int) -> list[tuple[int, float]]:
        """(chunk seq, cosine) of the `top_k` nearest live chunks, best first (vectors are stored normalised)."""
        with self._lock:
            self.refresh(conn)
            if self._rows - self._dead == 0:
                return []
            q = np.asarray(query, dtype=np.float32)
            q = q / (np.linalg.norm(q) or 1.0)
            scores = self._matrix[: self._rows] @ q
            if self._dead:
                scores[~self._alive[: self._rows]] = -np.inf
            k = min(top_k, self._rows - self._dead)
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best], kind="stable")]
            return [(int(self._seqs[i]), float(scores[i])) for i in best]
