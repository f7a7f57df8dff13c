"""What the API and workers rely on from a store, checked against both engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.store import ChunkRecord, DocumentWrite, EmbeddingMismatchError, Store
from shared.store.blobs import BlobNotFoundError, blob_key, blob_path
from shared.store.retrieval_modes import HYBRID_RRF_K, KEYWORD_WEIGHT, VECTOR_WEIGHT

# Hand-made 4-d vectors: the query vector points at the KV-cache chunk and away from the error-code chunk,
# so only the keyword side can find "E1024".
TEXTS = {
    "kv": ("KV 缓存把键向量和值向量保存在显存中", [1.0, 0.0, 0.0, 0.0]),
    "batch": ("连续批处理让新请求立即插入批次", [0.0, 1.0, 0.0, 0.0]),
    "quant": ("量化把权重压缩到四比特", [0.0, 0.0, 1.0, 0.0]),
    "error": ("错误码 E1024 表示显存不足", [0.0, 0.0, 0.0, 1.0]),
}
QUESTION = "E1024 是什么错误"
QUERY_VECTOR = np.array([0.9, 0.3, 0.1, -0.5], dtype=np.float32)  # cosine order: kv, batch, quant, error


def _vectors(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed + n).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _kb(store: Store, name: str = "kb") -> None:
    c = store.collection(name)
    c.ensure("hand-made", 4)
    chunks = [ChunkRecord("d1", i, text, location=f"§{i}") for i, (text, _) in enumerate(TEXTS.values())]
    c.replace_document("d1", "notes.md", "sha-1", chunks, np.array([v for _, v in TEXTS.values()], np.float32))


def _texts(chunks: list) -> list[str]:
    return [c.text for c in chunks]


def test_a_new_collection_does_not_exist_until_ensured(store: Store) -> None:
    c = store.collection("fresh")
    assert not c.exists()
    with pytest.raises(LookupError, match="'fresh' does not exist"):
        c.embedding()
    assert store.collection_names() == []
    c.ensure("m", 4)
    assert c.exists()
    assert store.collection_names() == ["fresh"]
    info = c.info()
    assert (info.embed_model, info.dimension, info.documents, info.chunks) == ("m", 4, 0, 0)
    assert c.embedding() == ("m", 4)  # what a question reads before every search, without counting


def test_writing_a_document_twice_keeps_one_copy_of_each_chunk(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    chunks = [ChunkRecord("d1", i, f"text {i}") for i in range(3)]
    c.replace_document("d1", "a.txt", "sha", chunks, _vectors(3))
    c.replace_document("d1", "a.txt", "sha", chunks, _vectors(3))
    assert (c.info().documents, c.info().chunks) == (1, 3)
    assert c.document_sha256s(["d1", "nope"]) == {"d1": "sha"}
    assert c.document_sha256s([]) == {}


def test_the_same_text_twice_in_a_document_is_one_chunk(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    c.replace_document("d1", "a.txt", "sha", [ChunkRecord("d1", 0, "same"), ChunkRecord("d1", 1, "same")], _vectors(2))
    assert c.info().chunks == 1
    assert c.documents()[0].chunks == 1


def _batch(version: int) -> list[DocumentWrite]:
    """Three documents as an index batch writes them; version 2 rewrites d1, shortens d2 and keeps d3."""
    texts = {
        "d1": [f"进程调度 rev{version} 第{i}段" for i in range(3)],
        "d2": ["页表 缓存 TLB", "缺页 中断 页表", "交换 分区"][: 4 - version],
        "d3": ["文件系统 日志 inode", "目录 项 inode"],
    }
    return [
        DocumentWrite(
            d, f"{d}.md", f"{d}-v{version}", [ChunkRecord(d, i, t) for i, t in enumerate(ts)], _vectors(3)[: len(ts)]
        )
        for d, ts in texts.items()
    ]


def _everything(store: Store, name: str) -> list[tuple[str, ...]]:
    c = store.collection(name)
    found: list[tuple[str, ...]] = [
        ("vector", h.chunk_id, f"{h.score:.5f}") for h in c.retrieve("", QUERY_VECTOR, 20, "vector")
    ]
    for question in ("页表 inode 进程调度", "交换 分区", "rev1", "rev2"):
        found += [("bm25", question, h.chunk_id, f"{h.score:.5f}") for h in c.retrieve(question, None, 20, "bm25")]
    info = c.info()
    return [*found, ("counts", str(info.documents), str(info.chunks))]


def test_a_batch_of_documents_written_at_once_stores_what_writing_them_one_by_one_does(store: Store) -> None:
    one_by_one, at_once = store.collection("single"), store.collection("batch")
    for c in (one_by_one, at_once):
        c.ensure("m", 4)
    for version in (1, 2):
        for d in _batch(version):
            one_by_one.replace_document(d.doc_id, d.source, d.sha256, d.chunks, d.vectors)
        at_once.replace_documents(_batch(version))
        assert _everything(store, "batch") == _everything(store, "single")
    assert [(d.id, d.sha256, d.chunks) for d in at_once.documents()] == [
        ("d1", "d1-v2", 3),
        ("d2", "d2-v2", 2),
        ("d3", "d3-v2", 2),
    ]
    assert not at_once.retrieve("rev1", None, 5, "bm25")  # d1's first version is gone from keyword search too


def test_a_batch_delivered_twice_keeps_one_copy_of_each_chunk(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    c.replace_documents(_batch(1))
    c.replace_documents(_batch(1))
    assert (c.info().documents, c.info().chunks) == (3, 8)
    assert len(c.retrieve("inode", None, 10, "bm25")) == 2


def test_a_document_listed_twice_in_one_batch_ends_as_its_last_listing(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    first, second = _batch(1)[0], _batch(2)[0]
    c.replace_documents([first, second])
    assert c.document_sha256s(["d1"]) == {"d1": "d1-v2"}
    assert (c.info().documents, c.info().chunks) == (1, 3)
    assert not c.retrieve("rev1", None, 5, "bm25")


def test_a_changed_document_replaces_its_old_chunks_in_both_searches(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    c.replace_document("d1", "a.txt", "v1", [ChunkRecord("d1", i, f"旧文本 old{i}") for i in range(3)], _vectors(3))
    assert _texts(c.retrieve("old1", None, 5, "bm25")) == ["旧文本 old1"]
    c.replace_document("d1", "a.txt", "v2", [ChunkRecord("d1", 0, "新文本 new")], _vectors(1))
    assert c.info().chunks == 1
    assert _texts(c.retrieve("x", _vectors(1)[0], 5, "vector")) == ["新文本 new"]
    assert c.retrieve("old1", None, 5, "bm25") == []
    assert _texts(c.retrieve("new", None, 5, "bm25")) == ["新文本 new"]
    assert c.document_sha256s(["d1"]) == {"d1": "v2"}


def test_a_rewritten_document_keeps_unchanged_chunks_and_updates_their_place(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    v = _vectors(2)
    c.replace_document("d1", "a.md", "v1", [ChunkRecord("d1", 0, "alpha", "A"), ChunkRecord("d1", 1, "beta")], v)
    c.replace_document("d1", "a.md", "v2", [ChunkRecord("d1", 0, "beta", "B › C")], v[1:])
    [found] = c.retrieve("beta", None, 3, "bm25")
    assert (found.text, found.location, found.source) == ("beta", "B › C", "a.md")


def test_deleting_a_document_removes_it_from_every_search_at_once(store: Store) -> None:
    _kb(store)
    c = store.collection("kb")
    last_axis = np.eye(4, dtype=np.float32)[3:]
    c.replace_document("d2", "other.md", "s2", [ChunkRecord("d2", 0, "流水线并行 E1024")], last_axis)
    assert "流水线并行 E1024" in _texts(c.retrieve("E1024", QUERY_VECTOR, 5, "hybrid"))
    assert c.delete_document("d2") == 1
    assert c.delete_document("d2") is None
    for mode in ("bm25", "vector", "hybrid"):
        assert "流水线并行 E1024" not in _texts(c.retrieve("E1024", -QUERY_VECTOR, 5, mode))  # type: ignore[arg-type]
    assert [d.id for d in c.documents()] == ["d1"]


def test_another_embedding_model_is_refused(store: Store) -> None:
    store.collection("c1").ensure("model-a", 4)
    with pytest.raises(EmbeddingMismatchError, match="model-a"):
        store.collection("c1").ensure("model-b", 8)
    with pytest.raises(EmbeddingMismatchError, match="model-b"):
        store.collection("c1").check_embedding("model-b", 4)


def test_documents_are_listed_by_source_with_paging(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    for i, name in enumerate(["b.md", "a.md", "c.md"]):
        c.replace_document(f"d{i}", name, f"s{i}", [ChunkRecord(f"d{i}", 0, f"text {i}")], _vectors(1, seed=i))
    assert [d.source for d in c.documents()] == ["a.md", "b.md", "c.md"]
    assert [d.source for d in c.documents(limit=1, offset=1)] == ["b.md"]
    assert c.documents(limit=5, offset=10) == []


def test_dropping_a_collection_removes_everything_and_leaves_others(store: Store) -> None:
    _kb(store, "kb")
    _kb(store, "kb2")
    store.collection("kb").drop()
    assert not store.collection("kb").exists()
    assert store.collection_names() == ["kb2"]
    assert store.collection("kb").retrieve(QUESTION, QUERY_VECTOR, 2) == []
    _kb(store, "kb")  # created again from nothing
    assert store.collection("kb").info().chunks == 4


def test_keyword_search_finds_an_exact_term_the_vectors_miss(store: Store) -> None:
    _kb(store)
    c = store.collection("kb")
    assert _texts(c.retrieve(QUESTION, QUERY_VECTOR, 1, "vector")) == [TEXTS["kv"][0]]
    [hit] = c.retrieve(QUESTION, None, 1, "bm25")
    assert hit.text == TEXTS["error"][0]
    assert (hit.source, hit.doc_id, hit.location) == ("notes.md", "d1", "§3")
    assert hit.score > 0


def test_vector_scores_are_cosine_best_first(store: Store) -> None:
    _kb(store)
    found = store.collection("kb").retrieve(QUESTION, QUERY_VECTOR, 4, "vector")
    assert _texts(found) == [TEXTS[k][0] for k in ("kv", "batch", "quant", "error")]
    expected = QUERY_VECTOR[0] / np.linalg.norm(QUERY_VECTOR)
    assert found[0].score == pytest.approx(expected, abs=1e-4)


def test_hybrid_is_the_default_and_fuses_both_rankings_with_rrf(store: Store) -> None:
    _kb(store)
    found = store.collection("kb").retrieve(QUESTION, QUERY_VECTOR, 2)
    # Weighted RRF: error is keyword rank 1 and vector rank 4 -> 1.2/(k + 1) + 1/(k + 4); kv is vector rank 1 with
    # no keyword match -> 1/(k + 1).
    k = HYBRID_RRF_K
    assert _texts(found) == [TEXTS["error"][0], TEXTS["kv"][0]]
    assert found[0].score == pytest.approx(KEYWORD_WEIGHT / (k + 1) + VECTOR_WEIGHT / (k + 4))
    assert found[1].score == pytest.approx(VECTOR_WEIGHT / (k + 1))


def test_keyword_search_without_a_shared_term_finds_nothing(store: Store) -> None:
    _kb(store)
    c = store.collection("kb")
    assert c.retrieve("流水线并行", None, 3, "bm25") == []
    assert c.retrieve("？！", None, 3, "bm25") == []
    assert len(c.retrieve("？！", QUERY_VECTOR, 3, "hybrid")) == 3  # the vector side still answers


def test_a_rare_term_outweighs_a_common_one(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    texts = ["显存 带宽", "显存 容量", "显存 KV缓存 分页", "算力 吞吐"]
    c.replace_document("d", "a.md", "s", [ChunkRecord("d", i, t) for i, t in enumerate(texts)], _vectors(4))
    assert c.retrieve("显存 分页", None, 1, "bm25")[0].text == "显存 KV缓存 分页"


def test_a_write_by_another_process_is_seen_by_the_next_query(store: Store, second_process_store: Store) -> None:
    _kb(store)
    reader = store.collection("kb")
    assert reader.retrieve("流水线并行", None, 3, "bm25") == []
    assert len(reader.retrieve(QUESTION, QUERY_VECTOR, 10, "vector")) == 4
    writer = second_process_store.collection("kb")
    fresh = np.array([[-0.9, -0.3, -0.1, 0.5]], dtype=np.float32)
    writer.replace_document("d2", "p.md", "s2", [ChunkRecord("d2", 0, "流水线并行把模型按层切到多张卡")], fresh)
    assert _texts(reader.retrieve("流水线并行", None, 3, "bm25")) == ["流水线并行把模型按层切到多张卡"]
    assert _texts(reader.retrieve("q", -QUERY_VECTOR, 1, "vector")) == ["流水线并行把模型按层切到多张卡"]
    writer.delete_document("d1")
    assert _texts(reader.retrieve(QUESTION, QUERY_VECTOR, 10, "vector")) == ["流水线并行把模型按层切到多张卡"]


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_modes_that_embed_need_a_query_vector(store: Store, mode: str) -> None:
    _kb(store)
    with pytest.raises(ValueError, match="needs a query vector"):
        store.collection("kb").retrieve(QUESTION, None, 2, mode)  # type: ignore[arg-type]


def test_bad_mode_and_top_k_are_refused(store: Store) -> None:
    _kb(store)
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        store.collection("kb").retrieve(QUESTION, QUERY_VECTOR, 2, "sparse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        store.collection("kb").retrieve(QUESTION, QUERY_VECTOR, 0)


def test_keyword_queries_with_quotes_and_operators_are_plain_text(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    c.replace_document("d", "a.md", "s", [ChunkRecord("d", 0, "it's a b&c | !x (y) \"z\" 'q' \\ NEAR")], _vectors(1))
    for question in ["it's", "b&c | !x", '(y) "z"', "'q' \\", "NEAR AND OR NOT *"]:
        assert len(c.retrieve(question, None, 3, "bm25")) == 1, question


@pytest.mark.parametrize("name", ["", "Upper", "-dash-first", "a" * 65, "sp ace", "../x", "x\n"])
def test_bad_collection_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(ValueError, match="invalid collection name"):
        store.collection(name)


def test_an_upload_reaches_a_worker_with_its_own_data_dir(store: Store, second_process_store: Store) -> None:
    data = "上传的文件".encode()
    key = blob_key("ab" * 32, ".txt")
    path = blob_path(store.blobs.local_root, key)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    store.blobs.put(key, path)
    if store.engine == "sqlite":  # one machine: the worker reads the API's file
        assert second_process_store.blobs.local_path(key).read_bytes() == data
    else:  # the worker's uploads folder is empty: the bytes come from the database
        assert not blob_path(second_process_store.blobs.local_root, key).exists()
        fetched = second_process_store.blobs.local_path(key)
        assert fetched.read_bytes() == data
        assert Path(fetched).is_relative_to(second_process_store.blobs.local_root)
    with pytest.raises(BlobNotFoundError):
        second_process_store.blobs.local_path(blob_key("cd" * 32, ".txt"))


def test_a_collection_dropped_and_rebuilt_elsewhere_is_read_afresh(store: Store, second_process_store: Store) -> None:
    _kb(store)
    reader = store.collection("kb")
    assert len(reader.retrieve(QUESTION, QUERY_VECTOR, 10, "vector")) == 4
    other = second_process_store.collection("kb")
    other.drop()
    # The reader's thread still holds what it opened before: it must not read the dropped collection through it.
    assert not reader.exists()
    with pytest.raises(LookupError):
        reader.embedding()
    assert reader.retrieve(QUESTION, QUERY_VECTOR, 10, "vector") == []
    other.ensure("hand-made", 4)
    assert reader.embedding() == ("hand-made", 4)
    other.replace_document("d9", "new.md", "s9", [ChunkRecord("d9", 0, "重建后的唯一内容")], QUERY_VECTOR[None, :])
    assert _texts(reader.retrieve(QUESTION, QUERY_VECTOR, 10, "vector")) == ["重建后的唯一内容"]
    assert _texts(reader.retrieve("重建", None, 10, "bm25")) == ["重建后的唯一内容"]


def test_past_the_postings_budget_common_terms_are_left_out_of_keyword_search(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from shared.store.postgres_store import PostgresStore
    from shared.store.sqlite_store import SQLiteStore

    if engine == "sqlite":
        small: Store = SQLiteStore(tmp_path / "collections", tmp_path / "uploads", postings_budget=3)
    else:
        url = request.getfixturevalue("postgres_server").fresh_database("budget")
        small = PostgresStore(url, tmp_path / "uploads", postings_budget=3)
    try:
        c = small.collection("c1")
        c.ensure("m", 4)
        texts = ["系统 调用", "系统 内核", "系统 进程", "系统 中断", "页表 映射"]  # 系统 in 4 chunks, 页表 in 1
        c.replace_document("d", "a.md", "s", [ChunkRecord("d", i, t) for i, t in enumerate(texts)], _vectors(5))
        assert _texts(c.retrieve("系统 页表", None, 5, "bm25")) == ["页表 映射"]  # 1 + 4 postings > 3
        assert len(c.retrieve("系统", None, 5, "bm25")) == 4  # the rarest term is always searched
        c.delete_document("d")
        c.replace_document("e", "b.md", "s", [ChunkRecord("e", 0, "系统 页表")], _vectors(1))
        assert _texts(c.retrieve("系统 页表", None, 5, "bm25")) == ["系统 页表"]  # counts follow deletes
    finally:
        small.close()


def test_a_chunk_far_longer_than_usual_is_stored_and_found(store: Store) -> None:
    c = store.collection("c1")
    c.ensure("m", 4)
    text = " ".join(f"term{i}x" for i in range(3000))  # 3,000 distinct tokens: more than a page of tsvector
    c.replace_document("d", "big.md", "s", [ChunkRecord("d", 0, text)], _vectors(1))
    assert [x.doc_id for x in c.retrieve("term1x", None, 1, "bm25")] == ["d"]
