"""Uploads no document refers to are collected, on both engines (deleted collections used to leave theirs behind)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from shared.store import ChunkRecord, Store
from shared.store.blobs import BlobNotFoundError, blob_key, blob_path
from shared.store.postgres_store import PostgresStore

pytestmark = pytest.mark.faults

SHA = {name: name[0] * 64 for name in ("a-only-in-c1", "both", "c-unreferenced", "d-renewed")}


def _upload(store: Store, name: str) -> str:
    key = blob_key(SHA[name], ".md")
    path = blob_path(store.blobs.local_root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {name}")
    store.blobs.put(key, path)
    return key


def _age(store: Store, key: str, seconds: float) -> None:
    """Make the blob look uploaded `seconds` ago."""
    if isinstance(store, PostgresStore):
        with store.pool.connection() as conn:
            conn.execute(
                "UPDATE uploads SET created_at = now() - make_interval(secs => %s) WHERE key = %s", (seconds, key)
            )
    then = time.time() - seconds
    os.utime(blob_path(store.blobs.local_root, key), (then, then))


def _document(store: Store, collection: str, name: str) -> None:
    c = store.collection(collection)
    c.ensure("m", 4)
    vector = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    c.replace_document(name, f"{name}.md", SHA[name], [ChunkRecord(name, 0, f"text of {name}")], vector)


def _stored(store: Store, key: str) -> bool:
    try:
        store.blobs.local_path(key)
    except BlobNotFoundError:
        return False
    return True


def test_uploads_no_document_refers_to_are_collected_after_the_grace_period(store: Store) -> None:
    keys = {name: _upload(store, name) for name in SHA}
    _document(store, "c1", "a-only-in-c1")
    _document(store, "c1", "both")
    _document(store, "c2", "both")
    assert store.collect_uploads(grace_s=3600) == []  # all fresh: an index job may not have run yet
    for key in keys.values():
        _age(store, key, 7200)
    _upload(store, "d-renewed")  # uploaded again just now: its job may be waiting

    assert store.collect_uploads(grace_s=3600) == [keys["c-unreferenced"]]
    assert not _stored(store, keys["c-unreferenced"])
    assert all(_stored(store, keys[n]) for n in ("a-only-in-c1", "both", "d-renewed"))


def test_a_dropped_collections_uploads_go_unless_another_collection_refers_to_them(store: Store) -> None:
    keys = {name: _upload(store, name) for name in ("a-only-in-c1", "both", "c-unreferenced")}
    _document(store, "c1", "a-only-in-c1")
    _document(store, "c1", "both")
    _document(store, "c2", "both")
    for key in keys.values():
        _age(store, key, 7200)
    c1 = store.collection("c1")
    hashes = c1.sha256s()
    c1.drop()

    assert store.collect_uploads(grace_s=3600, among=hashes) == [keys["a-only-in-c1"]]
    assert _stored(store, keys["both"])  # c2's document still refers to it
    assert _stored(store, keys["c-unreferenced"])  # not c1's: left to the periodic sweep
