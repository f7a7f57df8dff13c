"""A collection file written by the first version of the embedded store opens, upgraded, with nothing lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from shared.store.sqlite_store import SCHEMA_VERSION, SQLiteStore

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (id TEXT PRIMARY KEY, source TEXT NOT NULL, sha256 TEXT NOT NULL,
    chunks INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE chunks (id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, position INTEGER NOT NULL,
    text TEXT NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX chunks_doc ON chunks (doc_id);
"""


def test_a_first_version_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "collections" / "old" / "store.sqlite3"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    meta = [("embed_model", "m"), ("dimension", "4"), ("created_at", "1"), ("updated_at", "1"), ("version", "3")]
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
    conn.execute("INSERT INTO documents VALUES ('d1', 'a.md', 'sha', 2, 1.0)")
    vectors = np.eye(4, dtype=np.float32)
    conn.execute("INSERT INTO chunks VALUES ('c1', 'd1', 0, '页面置换算法 LRU', ?)", (vectors[0].tobytes(),))
    conn.execute("INSERT INTO chunks VALUES ('c2', 'd1', 1, '进程调度 时间片', ?)", (vectors[1].tobytes(),))
    conn.commit()
    conn.close()

    c = SQLiteStore(tmp_path / "collections", tmp_path / "uploads").collection("old")
    assert c.exists() and c.info().chunks == 2
    assert [x.chunk_id for x in c.retrieve("LRU 页面", None, 2, "bm25")] == ["c1"]
    assert [x.chunk_id for x in c.retrieve("q", vectors[1], 1, "vector")] == ["c2"]
    c.delete_document("d1")
    assert c.retrieve("进程", None, 2, "bm25") == [] and c.info().chunks == 0
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert check.execute("SELECT COUNT(*) FROM terms").fetchone()[0] == 0
