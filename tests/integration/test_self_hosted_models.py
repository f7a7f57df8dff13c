"""Self-hosted models beside the LLM: an OpenAI-compatible embedding server (TEI, vLLM, Ollama, Infinity) and a
reranker (the Cohere/Jina `POST /rerank` of vLLM, Jina, Infinity, Xinference, Zhipu; TEI's own form).

EMBED_PROVIDER=openai_compatible builds and searches a collection with the model's instruction prefixes, and the
collection refuses another model. RERANK_PROVIDER reorders the fused candidates; a reranker that fails or hangs
leaves the fused order and says so in `done`, never a failed answer.

The servers are the local fake, which speaks the real wire formats: `POST /embeddings` `{"model", "input",
"encoding_format"}` -> `{"data": [{"index", "embedding"}]}`; `POST /rerank` `{"model", "query", "documents",
"top_n"}` -> `{"results": [{"index", "relevance_score"}]}`, and TEI's `{"query", "texts"}` -> `[{"index", "score"}]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from harness.sse import Event, iter_events, read_stream
from shared.providers.rerankers import HttpReranker
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.contracts import spawn_api
from tests.support.jobs import wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration
COLLECTION = "self-hosted"
MODEL = "bge-m3"


@pytest.fixture(scope="module")
def embed_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("oai-embed")
    env = stack_env(redis_server, "oai-embed", root)
    env.update(
        EMBED_PROVIDER="openai_compatible",
        EMBED_BASE_URL=zhipu_server.base_url,
        EMBED_MODEL=MODEL,
        EMBED_QUERY_PREFIX="query: ",
        EMBED_PASSAGE_PREFIX="passage: ",
        EMBED_TEXTS_PER_REQUEST="4",
        LLM_PROVIDER="extractive",
        RERANK_PROVIDER="openai_compatible",
        RERANK_BASE_URL=zhipu_server.base_url,
        RERANK_MODEL="bge-reranker-v2-m3",
        RERANK_API_KEY="rerank-key",
        RERANK_CANDIDATES="6",
        RERANK_TIMEOUT_S="1",
    )
    stack = Stack("oai-embed", env, root).start([("worker", "index,query", "threads", 2)])
    yield stack
    stop_later("self hosted models stack", stack.stop)  # while the next module starts


@pytest.fixture(scope="module")
def indexed(embed_stack: Stack, zhipu_server: ZhipuFakeServer) -> dict[str, object]:
    zhipu_server.reset()
    copy_sample_docs(embed_stack, "kb-oai")
    with client_for(embed_stack) as client:
        job = client.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": ["kb-oai"]})
        assert job.status_code == 202, job.text
        record, _ = wait_for_job(client, job.json()["job_id"])
    assert record["state"] == "succeeded", record
    return {"job": record, "requests": zhipu_server.requests("/embeddings")}


def test_chunks_are_embedded_by_the_server_in_batches_with_the_passage_prefix(indexed: dict[str, object]) -> None:
    job, requests = indexed["job"], indexed["requests"]
    assert isinstance(job, dict) and isinstance(requests, list)
    bodies = [r["body"] for r in requests]
    texts = [text for body in bodies for text in body["input"]]
    assert len(texts) == job["result"]["chunks"]
    assert all(body["model"] == MODEL and body["encoding_format"] == "float" for body in bodies)
    assert all(len(body["input"]) <= 4 for body in bodies) and len(bodies) >= len(texts) / 4
    assert all(text.startswith("passage: ") for text in texts)


def test_a_question_is_embedded_with_the_query_prefix_and_finds_its_passage(
    embed_stack: Stack, indexed: dict[str, object], zhipu_server: ZhipuFakeServer
) -> None:
    zhipu_server.reset()
    with client_for(embed_stack) as client:
        query = client.post(
            "/v1/queries", json={"collection": COLLECTION, "question": "什么是 KV 缓存？", "mode": "vector"}
        )
        assert query.status_code == 202, query.text
        with client.stream("GET", query.json()["stream_url"]) as stream:
            sources = next(iter_events(stream)).data
    asked = [r["body"]["input"] for r in zhipu_server.requests("/embeddings")]
    assert [r["body"]["query"] for r in zhipu_server.requests("/rerank")] == ["什么是 KV 缓存？"]
    # Retrieval's request: the question alone, with its prefix. The extractive answerer embeds the question again,
    # and its sentences, once the sources are sent; on a busy machine some of that may already be here.
    assert asked[0] == ["query: 什么是 KV 缓存？"], asked
    assert sources and sources[0]["document"].endswith("大模型推理.txt"), sources
    info = local_http.get(f"{embed_stack.base_url}/v1/collections/{COLLECTION}").json()
    assert info["embed_model"].startswith(f"openai_compatible/{MODEL}"), info


def test_the_collection_refuses_a_question_embedded_by_another_model(
    embed_stack: Stack, indexed: dict[str, object]
) -> None:
    other = spawn_api(embed_stack, "api-other-model", {"EMBED_MODEL": "bge-large-zh"})
    try:
        with local_http.client(base_url=other, timeout=10) as client:
            refused = client.post("/v1/queries", json={"collection": COLLECTION, "question": "KV 缓存"})
    finally:
        embed_stack.stop("api-other-model")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "embedding_mismatch" and MODEL in error["message"], error


BOOSTED = "acks_late"  # in the task-queue notes only: far from a question about KV caches


def ask(stack: Stack, question: str, top_k: int = 2, rerank: bool = True) -> dict[str, Event]:
    """The `sources` and `done` (or `error`) events of one answer, by name."""
    body = {"collection": COLLECTION, "question": question, "top_k": top_k, "rerank": rerank}
    with client_for(stack) as client:
        query = client.post("/v1/queries", json=body)
        assert query.status_code == 202, query.text
        return {e.event: e for e in read_stream(client, query.json()["stream_url"])}


def test_the_reranker_reorders_the_fused_candidates(
    embed_stack: Stack, indexed: dict[str, object], zhipu: ZhipuFakeServer
) -> None:
    unboosted = ask(embed_stack, "KV 缓存为什么能加快推理？")["sources"].data
    assert not any(BOOSTED in s["text"] for s in unboosted)  # the question alone does not cite it
    zhipu.configure(rerank_boost=BOOSTED)
    events = ask(embed_stack, "KV 缓存为什么能加快推理？")
    sources, done = events["sources"].data, events["done"].data
    assert BOOSTED in sources[0]["text"] and sources[0]["rerank_score"] >= 1.0, sources
    assert [s["rerank_score"] for s in sources] == sorted((s["rerank_score"] for s in sources), reverse=True)
    request = zhipu.requests("/rerank")[-1]
    assert request["body"]["model"] == "bge-reranker-v2-m3" and len(request["body"]["documents"]) == 6
    assert done["rerank"]["applied"] is True and done["rerank"]["candidates"] == 6, done
    assert done["timings_ms"]["rerank"] is not None and len(sources) == 2


def test_a_question_may_ask_for_no_reranking(
    embed_stack: Stack, indexed: dict[str, object], zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(rerank_boost=BOOSTED)
    events = ask(embed_stack, "KV 缓存为什么能加快推理？", rerank=False)
    assert not any(BOOSTED in s["text"] for s in events["sources"].data)
    assert all(s["rerank_score"] is None for s in events["sources"].data)
    assert events["done"].data["rerank"] is None and zhipu.requests("/rerank") == []


@pytest.mark.parametrize("failure", ["500", "hang"])
def test_a_reranker_that_fails_or_hangs_leaves_the_fused_order_and_says_so(
    embed_stack: Stack, indexed: dict[str, object], zhipu: ZhipuFakeServer, failure: str
) -> None:
    expected = [s["chunk_id"] for s in ask(embed_stack, "KV 缓存为什么能加快推理？")["sources"].data]
    zhipu.configure(rerank_boost=BOOSTED)  # had the reranker answered, the order would change
    if failure == "500":
        zhipu.configure(rerank_fail_status=500)
    else:
        zhipu.configure(rerank_delay_ms=3000)  # RERANK_TIMEOUT_S is 1
    events = ask(embed_stack, "KV 缓存为什么能加快推理？")
    assert "done" in events, events  # an answer, not an error
    sources, rerank = events["sources"].data, events["done"].data["rerank"]
    assert [s["chunk_id"] for s in sources] == expected and all(s["rerank_score"] is None for s in sources)
    assert rerank["applied"] is False, rerank
    assert ("500" in rerank["error"]) if failure == "500" else ("timed out" in rerank["error"].lower()), rerank


def test_tei_rerank_form_scores_every_text_in_order(zhipu: ZhipuFakeServer) -> None:
    with local_http.client(base_url=zhipu.url + "/", headers={"Authorization": "Bearer k"}) as client:
        reranker = HttpReranker(client=client, model="", api="tei", name="tei/test")
        scores = reranker.scores("KV 缓存", ["无关的文字", "KV 缓存加速推理", "缓存"])
    assert scores[1] == max(scores) and scores[0] == min(scores) and len(scores) == 3
    assert zhipu.requests("/rerank")[-1]["body"]["texts"] == ["无关的文字", "KV 缓存加速推理", "缓存"]
