"""Evaluation jobs with a reranker configured: a fourth mode, hybrid+rerank, scored like the others.

The reranker is the local fake's Cohere/Jina `POST /rerank` (harness/fakes/zhipu_app.py), which gives a text holding
its `rerank_boost` string the top score whatever the question: the case below is found by hybrid+rerank only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import RedisServer, Stack
from tests.conftest import client_for, copy_sample_docs, stack_env
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration
COLLECTION = "eval-rerank"
BOOSTED = "acks_late"  # in the task-queue notes only: far from a question about KV caches
CASE = {"question": "KV 缓存为什么能加快推理？", "relevant": [{"document": "任务队列.md", "text": BOOSTED}]}


@pytest.fixture(scope="module")
def rerank_stack(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("eval-rerank")
    # Embeddings from the local Zhipu-protocol server: the local model would spend seconds of CPU per sample
    # document, and what is under test is the reranking stage, whatever embedded the chunks.
    env = stack_env(redis_server, "eval-rerank", root, zhipu_server)
    env.update(
        RERANK_PROVIDER="openai_compatible",
        RERANK_BASE_URL=zhipu_server.base_url,
        RERANK_MODEL="bge-reranker-v2-m3",
        RERANK_API_KEY="rerank-key",
        RERANK_CANDIDATES="50",  # every chunk of docs/kb: the boosted one is among them
        RERANK_TIMEOUT_S="1",
    )
    stack = Stack("eval-rerank", env, root).start([("worker", "index,query", "threads", 2)])
    copy_sample_docs(stack, "kb")
    with client_for(stack) as client:
        assert index_and_wait(client, COLLECTION, ["kb"])["state"] == "succeeded"
    yield stack
    stop_later("evaluation rerank stack", stack.stop)  # while the next module starts


def evaluate(stack: Stack, k: int) -> dict[str, Any]:
    with client_for(stack) as client:
        response = client.post(
            f"/v1/collections/{COLLECTION}/evaluations",
            params={"k": k},
            content=json.dumps(CASE, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 202, response.text
        job, _ = wait_for_job(client, response.json()["job_id"])
    assert job["state"] == "succeeded", job
    return {m["mode"]: m for m in job["result"]["modes"]} | {"reranker": job["result"]["reranker"]}


def test_hybrid_rerank_is_scored_from_the_rerankers_order(rerank_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(rerank_boost=BOOSTED)
    modes = evaluate(rerank_stack, k=2)
    assert modes["reranker"] and list(modes) == ["vector", "bm25", "hybrid", "hybrid+rerank", "reranker"]
    assert modes["hybrid"]["questions"][0]["rank"] is None  # the fused order does not reach it
    reranked = modes["hybrid+rerank"]
    assert reranked["questions"][0]["rank"] == 1 and reranked["hit_at"] == {"1": 1.0, "2": 1.0}, {
        **reranked,
        "questions": None,
    }
    assert reranked["rerank_failures"] == 0 and "rerank_failures" not in modes["hybrid"]
    request = zhipu.requests("/rerank")[-1]["body"]
    assert request["query"] == CASE["question"] and len(request["documents"]) > 2


def test_a_failing_reranker_leaves_the_fused_order_and_is_counted(rerank_stack: Stack, zhipu: ZhipuFakeServer) -> None:
    zhipu.configure(rerank_boost=BOOSTED, rerank_fail_status=500)
    modes = evaluate(rerank_stack, k=2)
    reranked = modes["hybrid+rerank"]
    assert reranked["rerank_failures"] == 1
    assert reranked["questions"][0]["rank"] == modes["hybrid"]["questions"][0]["rank"] is None
