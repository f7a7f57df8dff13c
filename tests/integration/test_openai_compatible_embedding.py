"""EMBED_PROVIDER=openai_compatible: a self-hosted embedding server (TEI, vLLM, Ollama, Infinity) builds and
searches a collection, with the model's instruction prefixes, and the collection refuses another model.

The server is the local fake, which answers `POST /embeddings` in the OpenAI wire format (Zhipu's v4 API is
that format): `{"model", "input": [...], "encoding_format"}` in, `{"data": [{"index", "embedding"}], "usage"}` out.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.fakes.zhipu_server import ZhipuFakeServer
from tests.support.contracts import spawn_api
from tests.support.jobs import wait_for_job
from tests.support.processes import RedisServer, Stack
from tests.support.sse import iter_events

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
    )
    stack = Stack("oai-embed", env, root).start([("worker", "index,query", "threads", 2)])
    yield stack
    stack.stop()


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
    asked = [text for r in zhipu_server.requests("/embeddings") for text in r["body"]["input"]]
    assert asked == ["query: 什么是 KV 缓存？"]
    assert sources and sources[0]["document"].endswith("大模型推理.txt"), sources
    info = httpx.get(f"{embed_stack.base_url}/v1/collections/{COLLECTION}").json()
    assert info["embed_model"].startswith(f"openai_compatible/{MODEL}"), info


def test_the_collection_refuses_a_question_embedded_by_another_model(
    embed_stack: Stack, indexed: dict[str, object]
) -> None:
    other = spawn_api(embed_stack, "api-other-model", {"EMBED_MODEL": "bge-large-zh"})
    try:
        with httpx.Client(base_url=other, timeout=10) as client:
            refused = client.post("/v1/queries", json={"collection": COLLECTION, "question": "KV 缓存"})
    finally:
        embed_stack.stop("api-other-model")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "embedding_mismatch" and MODEL in error["message"], error
