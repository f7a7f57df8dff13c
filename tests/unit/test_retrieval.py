import threading
import time
from pathlib import Path

import numpy as np
import pytest

from shared.store import ChunkRecord, CollectionStore
from shared.store import retrieval as retrieval_module
from shared.store.retrieval import Retriever

# Hand-made 4-d vectors: the query vector points at the KV-cache chunk, and away from the error-code
# chunk, so only the lexical side can find "E1024".
TEXTS = {
    "kv": ("KV 缓存把键向量和值向量保存在显存中", [1.0, 0.0, 0.0, 0.0]),
    "batch": ("连续批处理让新请求立即插入批次", [0.0, 1.0, 0.0, 0.0]),
    "quant": ("量化把权重压缩到四比特", [0.0, 0.0, 1.0, 0.0]),
    "error": ("错误码 E1024 表示显存不足", [0.0, 0.0, 0.0, 1.0]),
}
QUESTION = "E1024 是什么错误"
QUERY_VECTOR = np.array([0.9, 0.3, 0.1, -0.5], dtype=np.float32)  # cosine order: kv, batch, quant, error


@pytest.fixture
def store(tmp_path: Path) -> CollectionStore:
    store = CollectionStore(tmp_path, "kb")
    store.ensure("hand-made", 4)
    chunks = [ChunkRecord("d1", i, text) for i, (text, _) in enumerate(TEXTS.values())]
    vectors = np.array([v for _, v in TEXTS.values()], dtype=np.float32)
    store.replace_document("d1", "notes.md", "sha-1", chunks, vectors)
    return store


def _texts(chunks: list) -> list[str]:
    return [c.text for c in chunks]


def test_bm25_finds_an_exact_term_the_vectors_miss(store: CollectionStore) -> None:
    retriever = Retriever()
    assert _texts(retriever.retrieve(store, QUESTION, QUERY_VECTOR, 1, "vector")) == [TEXTS["kv"][0]]
    found = retriever.retrieve(store, QUESTION, None, 4, "bm25")
    assert _texts(found) == [TEXTS["error"][0]]
    assert found[0].score > 0
    assert (found[0].doc_id, found[0].source) == ("d1", "notes.md")


def test_vector_mode_scores_are_cosine(store: CollectionStore) -> None:
    found = Retriever().retrieve(store, QUESTION, QUERY_VECTOR, 4, "vector")
    cosine = QUERY_VECTOR / np.linalg.norm(QUERY_VECTOR)
    assert [c.score for c in found] == pytest.approx([cosine[0], cosine[1], cosine[2], cosine[3]], abs=1e-6)


def test_hybrid_is_the_default_and_fuses_both_rankings_with_rrf(store: CollectionStore) -> None:
    found = Retriever().retrieve(store, QUESTION, QUERY_VECTOR, 2)
    # "error" is 1st by BM25 and 4th by cosine; "kv" is 1st by cosine and absent from BM25.
    assert _texts(found) == [TEXTS["error"][0], TEXTS["kv"][0]]
    assert [c.score for c in found] == pytest.approx([1 / 61 + 1 / 64, 1 / 61])


def test_hybrid_returns_at_most_top_k(store: CollectionStore) -> None:
    assert len(Retriever().retrieve(store, "显存", QUERY_VECTOR, 3, "hybrid")) == 3


def test_the_bm25_index_is_reused_until_a_document_is_written(store: CollectionStore, tmp_path: Path) -> None:
    retriever = Retriever()
    assert retriever.retrieve(store, "流水线并行", None, 3, "bm25") == []
    first = retriever.bm25_index(store)
    assert retriever.bm25_index(store) is first

    writer = CollectionStore(tmp_path, "kb")  # another process's store object on the same file
    writer.replace_document(
        "d2", "parallel.md", "sha-2", [ChunkRecord("d2", 0, "流水线并行把模型按层切到多张卡")], np.eye(4)[:1]
    )
    assert _texts(retriever.retrieve(store, "流水线并行", None, 3, "bm25")) == ["流水线并行把模型按层切到多张卡"]
    assert retriever.bm25_index(store) is not first


def test_threads_asking_for_a_stale_index_build_it_once(
    store: CollectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = 0

    class SlowIndex(retrieval_module.BM25Index):
        def __init__(self, ids: list[str], texts: list[str]) -> None:
            nonlocal builds
            builds += 1
            time.sleep(0.2)
            super().__init__(ids, texts)

    monkeypatch.setattr(retrieval_module, "BM25Index", SlowIndex)
    retriever = Retriever()
    results: list[list[str]] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        results.append(_texts(retriever.retrieve(store, QUESTION, QUERY_VECTOR, 2, "hybrid")))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == 1
    assert results == [[TEXTS["error"][0], TEXTS["kv"][0]]] * 8


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_modes_that_embed_need_a_query_vector(store: CollectionStore, mode: retrieval_module.RetrievalMode) -> None:
    with pytest.raises(ValueError, match="needs a query vector"):
        Retriever().retrieve(store, QUESTION, None, 2, mode)


def test_bad_mode_and_top_k_are_refused(store: CollectionStore) -> None:
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        Retriever().retrieve(store, QUESTION, QUERY_VECTOR, 2, "sparse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        Retriever().retrieve(store, QUESTION, QUERY_VECTOR, 0)
