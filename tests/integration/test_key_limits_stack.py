"""Per-key limits and usage through real processes: two API processes, a Celery worker, the Zhipu-protocol server.

One stack with keys on and a keys file whose keys each have one limit; both API processes share only Redis, so
a limit holds across them. The day boundary is moved in tests/integration/test_key_limits.py, where "now" is
given to the gate: processes run on the real clock.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery

from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import BIN, RedisServer, Stack, free_port, run_program
from harness.sse import iter_events
from tests.conftest import copy_sample_docs, stack_env
from tests.e2e.conftest import wait_ready
from tests.support.jobs import index_and_wait, wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

COLLECTION = "limits"
QUESTION = "什么是投机解码？"
# name -> its limits in the keys file
KEYS: dict[str, dict[str, Any]] = {
    "admin": {"admin": True},
    "burst": {"requests_per_minute": 5},
    "calm": {"requests_per_minute": 1000},
    "daily": {"questions_per_day": 3},
    "streams": {"max_streams": 1},
    "tokens": {"tokens_per_day": 1},
    "follow": {},
}


@dataclass(frozen=True)
class LimitedStack:
    urls: tuple[str, str]  # two API processes
    keys: dict[str, str]  # name -> key
    stack: Stack

    def client(self, name: str, api: int = 0) -> httpx.Client:
        return local_http.client(
            base_url=self.urls[api],
            headers={"Authorization": f"Bearer {self.keys[name]}"},
            timeout=httpx.Timeout(10.0, read=60.0),
        )


def _keys_file(folder: Path, keys: dict[str, str]) -> Path:
    tables = []
    for name, limits in KEYS.items():
        lines = [f'name = "{name}"', f'key = "{keys[name]}"']
        lines += [
            f"{field} = {str(value).lower() if isinstance(value, bool) else value}" for field, value in limits.items()
        ]
        tables.append("[[key]]\n" + "\n".join(lines))
    path = folder / "keys.toml"
    path.write_text("\n\n".join(tables) + "\n")
    return path


@pytest.fixture(scope="module")
def limited(
    redis_server: RedisServer, zhipu_server: ZhipuFakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LimitedStack]:
    root = tmp_path_factory.mktemp("key-limits")
    keys = {name: f"{name}-{secrets.token_urlsafe(24)}" for name in KEYS}
    env = stack_env(redis_server, "key limits", root, zhipu_server)
    env.update(API_KEYS_FILE=str(_keys_file(root, keys)), STREAM_TOKEN_SECRET=secrets.token_hex(32))
    env.update(HEARTBEAT_INTERVAL_S="0.5", HEARTBEAT_TTL_S="3")  # a killed worker's answer ends within seconds
    stack = Stack("key-limits", env, root).start([("worker", "index,query", "threads", 4)])
    port = free_port()
    second = stack.spawn(
        "api-2",
        [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
    )
    wait_ready(f"http://127.0.0.1:{port}", "the second API process", second)
    ready = LimitedStack((stack.base_url, f"http://127.0.0.1:{port}"), keys, stack)
    copy_sample_docs(stack, "kb")
    with ready.client("admin") as admin:
        assert index_and_wait(admin, COLLECTION, ["kb"])["state"] == "succeeded"
    yield ready
    stop_later("key limits stack", stack.stop)  # while the next module starts


def _ask(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/queries", json={"collection": COLLECTION, "question": QUESTION})


def test_a_key_at_its_rate_gets_429_with_headers_while_another_key_is_unaffected(limited: LimitedStack) -> None:
    with limited.client("burst") as burst, limited.client("burst", api=1) as burst_2, limited.client("calm") as calm:
        for _attempt in range(2):  # once more if the minute turned during the run (the window restarts)
            minute = int(time.time() // 60)
            answers = [(burst if n % 2 else burst_2).get("/v1/jobs") for n in range(7)]
            other = calm.get("/v1/jobs")
            if int(time.time() // 60) == minute:
                break
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2  # five across both processes
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "5" and 0 < int(a.headers["RateLimit-Reset"]) <= 60 for a in answers)
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "requests_per_minute" in refused.json()["error"]["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert other.status_code == 200 and other.headers["RateLimit-Limit"] == "1000"


def test_concurrent_questions_through_two_api_processes_admit_exactly_the_daily_quota(
    limited: LimitedStack, zhipu: ZhipuFakeServer
) -> None:
    with limited.client("daily") as first, limited.client("daily", api=1) as second:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda n: _ask(first if n % 2 else second), range(12)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] * 3 + [429] * 9
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert "questions_per_day" in refused.json()["error"]["message"]
        for accepted in (a for a in answers if a.status_code == 202):
            wait_for_job(first, accepted.json()["job_id"])
        usage = first.get("/v1/usage").json()["keys"]
    assert [(u["key"], u["total"]["questions"]) for u in usage] == [("daily", 3)]


def test_the_stream_cap_frees_a_slot_when_an_answer_is_cancelled_and_when_it_ends(
    limited: LimitedStack, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=[f"片{i}" for i in range(20)], token_delay_ms=100)
    with limited.client("streams") as client, limited.client("streams", api=1) as other_api:
        first = _ask(client)
        assert first.status_code == 202, first.text
        refused = _ask(other_api)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert "max_streams" in refused.json()["error"]["message"]
        assert client.delete(f"/v1/queries/{first.json()['job_id']}").status_code == 202
        assert wait_for_job(client, first.json()["job_id"])[0]["state"] == "cancelled"
        second = _ask(other_api)  # the cancelled answer's end freed the slot
        assert second.status_code == 202, second.text
        assert _ask(client).status_code == 429
        assert wait_for_job(client, second.json()["job_id"])[0]["state"] == "succeeded"
        third = _ask(client)
        assert third.status_code == 202, third.text  # the answer's end freed it
        wait_for_job(client, third.json()["job_id"])  # before the next test counts what the upstream was sent


def test_the_token_quota_stops_the_next_question_and_usage_matches_what_the_upstream_was_sent(
    limited: LimitedStack, zhipu: ZhipuFakeServer
) -> None:
    tokens = ["投机", "解码", "是", "一种", "加速", "方法"]
    zhipu.configure(tokens=tokens)
    with limited.client("tokens") as client, limited.client("admin", api=1) as admin:
        accepted = _ask(client)
        assert accepted.status_code == 202, accepted.text
        assert wait_for_job(client, accepted.json()["job_id"])[0]["state"] == "succeeded"
        # Opened with its signed token, no key: still this key's stream; a reconnect is not another one.
        stream_url = limited.urls[1] + accepted.json()["stream_url"]
        assert "event: done" in local_http.get(stream_url, timeout=30).text
        assert local_http.get(stream_url, headers={"Last-Event-ID": "1"}, timeout=30).status_code == 200
        refused = _ask(client)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "quota_exceeded"
        assert "tokens_per_day" in refused.json()["error"]["message"]
        own = client.get("/v1/usage").json()["keys"]
        every = {u["key"]: u for u in admin.get("/v1/usage").json()["keys"]}
        metrics = local_http.get(f"{limited.urls[1]}/metrics").text
    env = {**os.environ, "RAGQ_API": limited.urls[0], "RAGQ_API_KEY": limited.keys["tokens"], "COLUMNS": "250"}
    table = run_program([str(BIN / "ragq"), "usage"], env, timeout=60)

    chats = zhipu.requests("/chat/completions")
    assert len(chats) == 1
    sent = sum(len(m["content"]) for m in chats[0]["body"]["messages"])  # the server counts a character a token
    embedded = sum(
        len(r["body"]["input"]) if isinstance(r["body"]["input"], list) else 1 for r in zhipu.requests("/embeddings")
    )
    assert len(own) == 1
    total = own[0]["total"]
    assert (total["questions"], total["streams"], total["prompt_tokens"]) == (1, 1, sent)
    assert total["completion_tokens"] == len(tokens)
    assert (total["estimated_tokens"], total["embedded_texts"]) == (0, embedded)
    assert set(every) == set(KEYS)  # the admin key sees every key, by name
    assert every["tokens"]["total"] == total
    assert every["admin"]["total"]["documents_stored"] > 0 and every["admin"]["total"]["embedded_chunks"] > 0
    assert f'ragqueue_key_usage_total{{field="completion_tokens",key="tokens"}} {float(len(tokens))}' in metrics
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "total" in line)
    cells = [cell.strip() for cell in row.split("│")[1:7]]
    assert cells == ["tokens", "total", "1", "1", f"{sent:,}", f"{len(tokens)}"], table.stdout


def test_a_follow_up_counts_the_tokens_of_its_rewrite_and_of_its_answer(
    limited: LimitedStack, zhipu: ZhipuFakeServer
) -> None:
    tokens = ["推测", "解码", "的", "代价"]
    zhipu.configure(tokens=tokens)
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "一种加速大模型推理的方法"}]
    with limited.client("follow") as client:
        body = {"collection": COLLECTION, "question": "它的代价是什么？", "history": history}
        accepted = client.post("/v1/queries", json=body)
        assert accepted.status_code == 202, accepted.text
        assert wait_for_job(client, accepted.json()["job_id"])[0]["state"] == "succeeded"
        total = client.get("/v1/usage").json()["keys"][0]["total"]
    chats = zhipu.requests("/chat/completions")
    assert [c["body"].get("stream", False) for c in chats] == [False, True]  # the rewrite, then the answer
    sent = sum(len(m["content"]) for chat in chats for m in chat["body"]["messages"])
    assert (total["prompt_tokens"], total["completion_tokens"]) == (sent, 2 * len(tokens))
    assert total["estimated_tokens"] == 0


def test_the_stream_cap_frees_a_slot_when_the_answer_s_worker_dies(
    limited: LimitedStack, zhipu: ZhipuFakeServer
) -> None:
    zhipu.configure(tokens=[f"片{i}" for i in range(50)], token_delay_ms=100)
    with limited.client("streams") as client:
        first = _ask(client)
        assert first.status_code == 202, first.text
        with client.stream("GET", f"/v1/queries/{first.json()['job_id']}/stream") as response:
            ending = None
            for event in iter_events(response):
                if event.event == "token" and "worker" in limited.stack.processes:
                    assert _ask(client).status_code == 429  # the slot is still taken mid-answer
                    worker = limited.stack.processes.pop("worker")
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(10)
                if event.event in ("done", "error"):
                    ending = event
                    break
        assert ending is not None and ending.data["code"] == "worker_lost"
        limited.stack.start_worker("worker", "index,query", "threads", 4)
        control = Celery(broker=limited.stack.env["REDIS_URL"]).control
        deadline = time.monotonic() + 60
        while not control.ping(timeout=0.5):  # admission refuses questions while no worker consumes them
            assert time.monotonic() < deadline, "the restarted worker did not answer a ping"
        zhipu.configure(tokens=["好"], token_delay_ms=0)
        second = _ask(client)  # the worker_lost ending freed the slot
        assert second.status_code == 202, second.text
        assert wait_for_job(client, second.json()["job_id"])[0]["state"] == "succeeded"
