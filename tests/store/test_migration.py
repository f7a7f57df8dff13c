"""`ragqueue-admin migrate-store`: embedded collections copied into PostgreSQL with their vectors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from harness.postgres import PostgresServer
from harness.processes import BIN, run_program
from shared.store import ChunkRecord
from shared.store.blobs import blob_key, blob_path
from shared.store.postgres_store import PostgresStore
from shared.store.sqlite_store import SQLiteStore


def _embedded(data: Path) -> SQLiteStore:
    store = SQLiteStore(data / "collections", data / "uploads")
    rng = np.random.default_rng(7)
    for name, docs in (("notes", 3), ("manuals", 2)):
        c = store.collection(name)
        c.ensure("local/e5", 8)
        for d in range(docs):
            chunks = [
                ChunkRecord(f"{name}{d}", i, f"{name} 文档 {d} 第 {i} 段 K{d}{i}", f"p. {i + 1}") for i in range(4)
            ]
            vectors = rng.normal(size=(4, 8)).astype(np.float32)
            c.replace_document(
                f"{name}{d}", f"{name}/{d}.md", f"sha{d}", chunks, vectors / np.linalg.norm(vectors, axis=1)[:, None]
            )
    upload = blob_path(data / "uploads", blob_key("ab" * 32, ".md"))
    upload.parent.mkdir(parents=True)
    upload.write_bytes("# 上传".encode())
    return store


def _migrate(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": str(data)}
    env.pop("VECTOR_STORE_URL", None)
    return run_program([str(BIN / "ragqueue-admin"), "migrate-store", *args], env)


def test_collections_are_copied_with_their_vectors_and_counts_checked(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    source = _embedded(tmp_path / "data")
    url = postgres_server.fresh_database("migrate")
    done = _migrate(tmp_path / "data", "--to", url)
    assert done.returncode == 0, done.stderr
    assert "notes: 3 documents / 12 chunks copied; PostgreSQL holds 3 / 12: counts match" in done.stderr
    assert "manuals: 2 documents / 8 chunks copied" in done.stderr
    assert "uploads: 1 files copied" in done.stderr

    target = PostgresStore(url, tmp_path / "worker-uploads")
    try:
        assert target.collection_names() == ["manuals", "notes"]
        src, dst = source.collection("notes"), target.collection("notes")
        assert (dst.info().embed_model, dst.info().dimension) == ("local/e5", 8)
        question = np.random.default_rng(1).normal(size=8).astype(np.float32)
        same = [(c.chunk_id, c.location, round(c.score, 4)) for c in src.retrieve("x", question, 5, "vector")]
        assert [(c.chunk_id, c.location, round(c.score, 4)) for c in dst.retrieve("x", question, 5, "vector")] == same
        assert [c.text for c in dst.retrieve("K12", None, 1, "bm25")] == ["notes 文档 1 第 2 段 K12"]
        assert target.blobs.local_path(blob_key("ab" * 32, ".md")).read_text() == "# 上传"

        again = _migrate(tmp_path / "data", "--to", url, "-c", "notes")  # a second run adds nothing
        assert again.returncode == 0, again.stderr
        assert dst.info().chunks == 12
    finally:
        target.close()


def test_an_unknown_collection_or_database_is_one_clear_line(tmp_path: Path) -> None:
    _embedded(tmp_path / "data")
    unknown = _migrate(tmp_path / "data", "--to", "postgresql://x@127.0.0.1:1/x", "-c", "nope")
    assert unknown.returncode == 2 and "no embedded collection 'nope'" in unknown.stderr
    down = _migrate(tmp_path / "data", "--to", "postgresql://x@127.0.0.1:1/x")
    assert down.returncode == 3 and "does not answer" in down.stderr and "Traceback" not in down.stderr
