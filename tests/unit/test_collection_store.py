from pathlib import Path

import numpy as np
import pytest

from shared.store import ChunkRecord, CollectionStore, EmbeddingMismatchError


def _vectors(n: int, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(n)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_writing_a_document_twice_keeps_one_copy_of_each_chunk(tmp_path: Path) -> None:
    store = CollectionStore(tmp_path, "c1")
    store.ensure("m", 4)
    chunks = [ChunkRecord("d1", i, f"text {i}") for i in range(3)]
    store.replace_document("d1", "a.txt", "sha", chunks, _vectors(3))
    store.replace_document("d1", "a.txt", "sha", chunks, _vectors(3))
    assert store.info().chunks == 3
    assert store.info().documents == 1


def test_a_changed_document_replaces_its_old_chunks(tmp_path: Path) -> None:
    store = CollectionStore(tmp_path, "c1")
    store.ensure("m", 4)
    store.replace_document("d1", "a.txt", "v1", [ChunkRecord("d1", i, f"old {i}") for i in range(3)], _vectors(3))
    store.replace_document("d1", "a.txt", "v2", [ChunkRecord("d1", 0, "new")], _vectors(1))
    assert store.info().chunks == 1
    assert [c.text for c in store.search(_vectors(1)[0], 5)] == ["new"]


def test_search_ranks_by_cosine_and_reads_other_writers(tmp_path: Path) -> None:
    writer, reader = CollectionStore(tmp_path, "c1"), CollectionStore(tmp_path, "c1")
    writer.ensure("m", 4)
    vectors = _vectors(5)
    writer.replace_document("d1", "a.txt", "s", [ChunkRecord("d1", i, f"t{i}") for i in range(5)], vectors)
    assert reader.search(vectors[2], 1)[0].text == "t2"
    writer.replace_document("d2", "b.txt", "s", [ChunkRecord("d2", 0, "fresh")], -vectors[2:3])
    assert reader.search(-vectors[2], 1)[0].text == "fresh"  # the reader's cache notices the new version


def test_another_embedding_model_is_refused(tmp_path: Path) -> None:
    CollectionStore(tmp_path, "c1").ensure("model-a", 4)
    with pytest.raises(EmbeddingMismatchError, match="model-a"):
        CollectionStore(tmp_path, "c1").ensure("model-b", 8)


@pytest.mark.parametrize("name", ["", "Upper", "-dash-first", "a" * 65, "sp ace", "../x"])
def test_bad_collection_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid collection name"):
        CollectionStore(tmp_path, name)
