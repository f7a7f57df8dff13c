"""Stream latency: time to first token (TTFT) and total time of one answer, stack paths vs the seed's path.

Every path streams from the local Zhipu-protocol server (harness/fakes/zhipu_server.py) set to 50 ms to the
first token, 5 ms per token and 50 tokens, one answer at a time:

- stream_chat: `GET /stream_chat` with `Accept: text/event-stream`, submit and relay in one call
  (HTTP → API → Celery → query worker → Redis pub/sub → API → SSE).
- queries: `POST /v1/queries`, then `GET` its stream_url (two requests).
- seed: the wow-rag seed in this process: `VectorStoreIndex` over docs/kb with `ZhipuAIEmbedding`, the
  LlamaIndex `ZhipuAI` LLM, `as_query_engine(streaming=True)`; TTFT is the first item of `response_gen`.

TTFT runs from just before the client sends the request to the first `token` event; total, to `done` (the
seed: to the end of `response_gen`). The stack retrieves in `vector` mode, like the seed (its default,
hybrid, adds BM25); one more row shows /stream_chat in hybrid mode. Before measuring, a Redis tap
timestamps each profiled job's start on the worker and its first published token, so the time between the
client and the worker (dispatch, queue) and between Redis and the client (relay) can be told apart.

bench/stream_concurrency.py imports the stack helpers from here (benchmarks are limited to one file each).

Run from the repository root:  .venv/bin/python -m bench.stream_latency --help
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import redis
import typer
from rich.console import Console
from rich.table import Table

from bench.host import machine
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import ROOT, RedisServer, Stack
from harness.sse import iter_events
from shared import keys

SECTION = "## Stream latency (bench/stream_latency.py)"
API_KEY = "bench.key"
COLLECTION = "bench"
QUESTION = "什么是 KV 缓存？"
ANSWER_TOKENS = [f"词{i:02d}" for i in range(50)]  # distinct, so a lost or repeated token is visible
FAKE_CONFIG: dict[str, Any] = {"first_token_delay_ms": 50, "token_delay_ms": 5, "tokens": ANSWER_TOKENS}
TARGET_P50_MS, TARGET_P99_MS = 10.0, 30.0

console = Console(width=None if sys.stdout.isatty() else 130)
app = typer.Typer(add_completion=False, rich_markup_mode="rich", help=__doc__)


@dataclass
class Sample:
    """One answer as the client saw it."""

    ttft_ms: float
    total_ms: float
    texts: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    terminals: list[str] = field(default_factory=list)
    worker: dict[str, float] | None = None  # the `done` event's timings_ms
    job_id: str = ""
    first_token_at: float = 0.0  # perf_counter


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def ms(end: float, start: float) -> float:
    return (end - start) * 1000


def read_answer(response: httpx.Response, started: float) -> Sample:
    """Read one SSE answer to its terminal event, timing the first `token` from `started`."""
    sample = Sample(0.0, 0.0, job_id=response.headers.get("x-job-id", ""))
    for event in iter_events(response):
        sample.ids.append(event.id or 0)
        if event.event == "token":
            sample.first_token_at = sample.first_token_at or time.perf_counter()
            sample.texts.append(event.data["text"])
        elif event.event in ("done", "error"):
            sample.terminals.append(event.event)
            sample.worker = event.data.get("timings_ms") if event.event == "done" else None
            break
    finished = time.perf_counter()
    sample.ttft_ms, sample.total_ms = ms(sample.first_token_at or finished, started), ms(finished, started)
    return sample


def stack_env(
    redis_url: str, data_dir: Path, zhipu_base_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIPU", "LLM_", "EMBED_"))}
    env.update(
        REDIS_URL=redis_url,
        DATA_DIR=str(data_dir),
        ZHIPU_API_KEY=API_KEY,
        ZHIPUAI_BASE_URL=zhipu_base_url,
        UPSTREAM_MAX_RETRIES="0",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    env.update(extra or {})
    return env


def start_stack(
    name: str, redis_url: str, zhipu_base_url: str, tmp: Path, query_threads: int, extra: dict[str, str] | None = None
) -> Stack:
    """One API process, one prefork index worker and one threaded query worker (`-c query_threads`)."""
    stack = Stack(name, stack_env(redis_url, tmp / name / "data", zhipu_base_url, extra), tmp)
    try:
        return stack.start([("index", "index", "prefork", 1), ("query", "query", "threads", query_threads)])
    except Exception:
        stack.stop()  # the processes that did start
        raise


def index_kb(client: httpx.Client, timeout: float = 300) -> str:
    """Index docs/kb into COLLECTION through the job API; a one-line summary of the finished job."""
    response = client.post(f"/v1/collections/{COLLECTION}/index-jobs", json={"paths": [str(ROOT / "docs" / "kb")]})
    response.raise_for_status()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(response.json()["status_url"]).json()
        if job["state"] == "succeeded":
            return f"{job['result'].get('chunks')} chunks"
        if job["state"] in ("failed", "cancelled"):
            raise RuntimeError(f"indexing docs/kb {job['state']}: {job['error']}")
        time.sleep(0.1)
    raise TimeoutError(f"indexing docs/kb did not finish in {timeout:.0f} s")


def write_section(path: Path, section: str, text: str) -> None:
    """Replace `section` of the markdown file (or append it), leaving every other section alone."""
    doc = path.read_text() if path.exists() else "# Benchmarks\n\nHow each figure was produced.\n"
    start = doc.find(section + "\n")
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(section))
        doc = doc[:start] + text + (doc[end:] if end >= 0 else "")
    path.write_text(doc)


class RedisTap:
    """Timestamps, in this process's perf_counter, each job's `running` record and first published token."""

    def __init__(self, redis_url: str) -> None:
        self.pubsub = redis.Redis.from_url(redis_url, decode_responses=True).pubsub(ignore_subscribe_messages=True)
        # Pub/sub channels are server-wide, not per DB: filter by the job ids we submitted afterwards.
        self.pubsub.psubscribe(keys.stream_channel("*"), keys.progress_channel("*"))
        self.running: dict[str, float] = {}
        self.first_token: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="redis-tap", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            seen, channel = time.perf_counter(), message["channel"]
            try:
                data = json.loads(message["data"])
            except ValueError:
                continue  # not one of ours
            job_id = channel.rsplit(":", 1)[1]
            if channel == keys.progress_channel(job_id) and data.get("state") == "running":
                self.running.setdefault(job_id, seen)
            elif channel == keys.stream_channel(job_id) and data.get("event") == "token":
                self.first_token.setdefault(job_id, seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.pubsub.close()


@dataclass
class Breakdown:
    """Where /stream_chat's TTFT goes, per answer, in ms."""

    parts: dict[str, list[float]]

    LABELS = {
        "client→job created": "request sent → the API writes the job record (`created_at`; HTTP, validation)",
        "job created→worker start": "record written → worker publishes `running` (subscribe, send_task, broker, "
        "task start)",
        "worker: retrieval": "`timings_ms.retrieval`: embed the question (one /embeddings call) and search",
        "worker: first token": "`timings_ms.first_token`: from just after `running` to the first LLM token, in "
        "the worker",
        "worker start→token published": "`running` seen → first `token` seen on pub/sub (same span, seen by the tap)",
        "token published→client": "first `token` on pub/sub → first `token` read by the client (relay + SSE)",
        "client TTFT": "the client's TTFT",
        "client TTFT − worker first token": "everything the queue and the relay add",
    }

    def rows(self) -> list[list[str]]:
        return [
            [name, f"{pct(v, 50):.1f}", f"{pct(v, 90):.1f}", f"{pct(v, 99):.1f}", self.LABELS[name]]
            for name, v in self.parts.items()
        ]

    def table(self) -> Table:
        table = Table(title="Where /stream_chat's TTFT goes (mode=vector, ms)")
        for name in ("span", "p50", "p90", "p99", "what"):
            table.add_column(name, justify="right" if name.startswith("p") else "left")
        for row in self.rows():
            table.add_row(*row)
        return table

    def markdown(self) -> list[str]:
        runs = len(next(iter(self.parts.values()), []))
        lines = [f"Where /stream_chat's TTFT goes ({runs} answers, mode=vector, ms; a Redis tap in the benchmark "
                 "process timestamps each job's `running` record and first published token):", "",
                 "| span | p50 | p90 | p99 | what |", "|---|---:|---:|---:|---|"]  # fmt: skip
        return lines + ["| " + " | ".join(r) + " |" for r in self.rows()]


def profile_stream_chat(
    client: httpx.Client, redis_url: str, runs: int, warmup: int, once: Callable[[], Sample]
) -> Breakdown:
    """Answer `runs` times with a Redis tap listening, and split each TTFT into spans."""
    for _ in range(warmup):
        once()
    tap = RedisTap(redis_url)
    try:
        samples = [(time.time(), time.perf_counter(), once()) for _ in range(runs)]
        time.sleep(0.2)  # let the tap thread drain
    finally:
        tap.close()
    parts: dict[str, list[float]] = {name: [] for name in Breakdown.LABELS}
    for sent_wall, sent, s in samples:
        running, published = tap.running.get(s.job_id), tap.first_token.get(s.job_id)
        if not (running and published and s.worker and s.first_token_at):
            continue
        created = (client.get(f"/v1/jobs/{s.job_id}").json()["created_at"] - sent_wall) * 1000
        values = (created, ms(running, sent) - created, s.worker["retrieval"], s.worker["first_token"],
                  ms(published, running), ms(s.first_token_at, published), s.ttft_ms,
                  s.ttft_ms - s.worker["first_token"])  # fmt: skip
        for name, value in zip(parts, values, strict=True):
            parts[name].append(value)
    return Breakdown(parts)


def stream_chat_once(client: httpx.Client, mode: str) -> Sample:
    params = {"param": QUESTION, "collection": COLLECTION, "mode": mode}
    started = time.perf_counter()
    with client.stream("GET", "/stream_chat", params=params, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        return read_answer(response, started)


def queries_once(client: httpx.Client, mode: str) -> Sample:
    started = time.perf_counter()
    accepted = client.post("/v1/queries", json={"collection": COLLECTION, "question": QUESTION, "mode": mode})
    accepted.raise_for_status()
    with client.stream("GET", accepted.json()["stream_url"], headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        return read_answer(response, started)


def build_seed(zhipu_base_url: str) -> Callable[[], Sample]:
    """The seed's in-process query engine over docs/kb, its SDK clients pointed at the fake server."""
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.embeddings.zhipuai import ZhipuAIEmbedding
    from llama_index.llms.zhipuai import ZhipuAI
    from zhipuai import ZhipuAI as ZhipuAIClient

    for noisy in ("httpx", "zhipuai"):  # one INFO line per request would bury the table
        logging.getLogger(noisy).setLevel(logging.WARNING)
    embed = ZhipuAIEmbedding(model="embedding-2", api_key=API_KEY)
    embed._client = ZhipuAIClient(api_key=API_KEY, base_url=zhipu_base_url, max_retries=0)
    llm = ZhipuAI(model="glm-4-flash", api_key=API_KEY)
    llm._client = ZhipuAIClient(api_key=API_KEY, base_url=zhipu_base_url, max_retries=0)
    documents = SimpleDirectoryReader(str(ROOT / "docs" / "kb")).load_data()
    engine = VectorStoreIndex.from_documents(documents, embed_model=embed).as_query_engine(streaming=True, llm=llm)

    def once() -> Sample:
        started, first, texts = time.perf_counter(), 0.0, []
        for piece in engine.query(QUESTION).response_gen:  # type: ignore[union-attr]
            first = first or time.perf_counter()
            texts.append(piece)
        finished = time.perf_counter()
        return Sample(ms(first or finished, started), ms(finished, started), texts, terminals=["done"])

    return once


def measure(name: str, once: Callable[[], Sample], runs: int, warmup: int) -> list[Sample]:
    for _ in range(warmup):
        once()
    samples = [once() for _ in range(runs)]
    wrong = sum(1 for s in samples if s.texts != ANSWER_TOKENS or s.terminals != ["done"])
    note = f", [red]{wrong} answers not exactly the 50 tokens and one done[/]" if wrong else ""
    console.print(f"  {name}: TTFT p50 {pct([s.ttft_ms for s in samples], 50):.1f} ms{note}")
    return samples


HEADERS = ["path", "runs", "TTFT p50", "TTFT p90", "TTFT p99", "total p50", "total p90", "total p99", "worker 1st"]


def result_rows(results: dict[str, list[Sample]]) -> list[list[str]]:
    out = []
    for name, samples in results.items():
        ttft, total = [s.ttft_ms for s in samples], [s.total_ms for s in samples]
        worker = [s.worker["first_token"] for s in samples if s.worker]
        cells = [f"{pct(v, q):.1f}" for v in (ttft, total) for q in (50, 90, 99)]
        out.append([name, str(len(samples)), *cells, f"{pct(worker, 50):.1f}" if worker else "-"])
    return out


def overhead(results: dict[str, list[Sample]]) -> list[str]:
    """Added TTFT of each stack path over the seed at p50 and p99, against the targets."""
    seed, lines = [s.ttft_ms for s in results["seed"]], []
    for name in ("stream_chat (vector)", "queries (vector)"):
        ttft = [s.ttft_ms for s in results[name]]
        p50, p99 = pct(ttft, 50) - pct(seed, 50), pct(ttft, 99) - pct(seed, 99)
        verdict = "met" if p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS else "NOT met"
        lines.append(
            f"{name} adds {p50:.1f} ms at p50 and {p99:.1f} ms at p99 to the seed's TTFT "
            f"(target: p50 ≤ {TARGET_P50_MS:g} ms, p99 ≤ {TARGET_P99_MS:g} ms: {verdict})"
        )
    return lines


def markdown(command: str, results: dict[str, list[Sample]], breakdown: Breakdown | None) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` — run on {time.strftime('%Y-%m-%d')}, {machine()}. The 2 cores are shared by "
        "everything: the benchmark client, the fake Zhipu server (a thread of the benchmark process), the API "
        "(one uvicorn process), the query worker (one Celery process, `-P threads -c 8`), an idle index worker "
        "and Redis.",
        "",
        "The fake Zhipu server waits 50 ms before the first token and 5 ms between tokens, 50 tokens per answer. "
        "docs/kb is indexed once through `POST /v1/collections/bench/index-jobs`; then each path answers "
        f"`{QUESTION}` one at a time over a keep-alive connection. TTFT: from just before the request is sent to "
        "the first `token` event (the seed: to the first item of `response.response_gen`); total: to `done` (the "
        "seed: to the end of `response_gen`). The stack rows marked vector use `mode=vector`, the seed's kind of "
        "retrieval, for the like-for-like comparison; the hybrid row is the stack's default (BM25 + vector, "
        "RRF). The seed retrieves its default 2 chunks, the stack `TOP_K` = 4; the fake server's timing does not "
        "depend on the prompt. Percentiles interpolate linearly, so p99 of 50 runs lies between the two slowest. "
        "worker 1st is the p50 of the `done` event's `timings_ms.first_token`, measured inside the worker.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---|" + "---:|" * (len(HEADERS) - 1),
        *["| " + " | ".join(r) + " |" for r in result_rows(results)],
        "",
        *[f"- {line}" for line in overhead(results)],
    ]
    return "\n".join(lines + (["", *breakdown.markdown()] if breakdown else [])) + "\n"


@app.command()
def main(
    runs: Annotated[int, typer.Option(help="Measured answers per path.")] = 50,
    warmup: Annotated[int, typer.Option(help="Answers per path before measuring (not counted).")] = 5,
    profile_runs: Annotated[int, typer.Option(help="Answers for the where-does-TTFT-go breakdown (0: skip).")] = 30,
    docs: Annotated[Path, typer.Option(help="Markdown file whose section gets the results.")] = ROOT
    / "docs"
    / "benchmarks.md",
    write_docs: Annotated[bool, typer.Option(help="Write the results into --docs.")] = False,
) -> None:
    """Time to first token and total time per answer: /stream_chat, /v1/queries + stream, and the seed.

    Starts the fake Zhipu server (50 ms to the first token, 5 ms per token, 50 tokens), uses the Redis at
    REDIS_URL on a claimed DB (or starts one), starts an API process and a query worker (`-P threads -c 8`)
    and indexes docs/kb through the job API. Then it profiles where /stream_chat's TTFT goes, times each
    path one answer at a time, and prints p50/p90/p99 TTFT and total, and what the stack adds to the seed's
    TTFT (target: p50 ≤ 10 ms, p99 ≤ 30 ms).

    Example: .venv/bin/python -m bench.stream_latency --runs 20 --warmup 2
    """
    console.print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    redis_server = RedisServer.start(tmp)
    results: dict[str, list[Sample]] = {}
    breakdown: Breakdown | None = None
    try:
        with ZhipuFakeServer(**FAKE_CONFIG) as fake:
            redis_url = redis_server.url(redis_server.claim_db("bench.stream_latency"))
            stack = start_stack("latency", redis_url, fake.base_url, tmp, query_threads=8)
            try:
                with httpx.Client(base_url=stack.base_url, timeout=60) as client:
                    console.print(f"indexed docs/kb: {index_kb(client)}")
                    if profile_runs:
                        console.print(f"[bold]profile[/] /stream_chat over {profile_runs} answers")
                        once = lambda: stream_chat_once(client, "vector")  # noqa: E731
                        breakdown = profile_stream_chat(client, redis_url, profile_runs, warmup, once)
                    console.print("[bold]measure[/]")
                    for mode in ("vector", "hybrid"):
                        once = functools.partial(stream_chat_once, client, mode)
                        results[f"stream_chat ({mode})"] = measure(f"stream_chat {mode}", once, runs, warmup)
                    once = lambda: queries_once(client, "vector")  # noqa: E731
                    results["queries (vector)"] = measure("queries vector", once, runs, warmup)
            except Exception:
                console.print(f"[red]failed[/]; stack logs are kept in {tmp}")
                raise
            finally:
                stack.stop()
            results["seed"] = measure("seed", build_seed(fake.base_url), runs, warmup)
    finally:
        redis_server.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title="Stream latency, one answer at a time (ms)")
    for name in HEADERS:
        table.add_column(name, justify="left" if name == "path" else "right")
    for row in result_rows(results):
        table.add_row(*row)
    console.print(table)
    for line in overhead(results):
        console.print(line)
    if breakdown:
        console.print(breakdown.table())
    if write_docs:
        command = " ".join([".venv/bin/python -m bench.stream_latency", *sys.argv[1:]])
        write_section(docs, SECTION, markdown(command, results, breakdown))
        console.print(f"results written to {docs}")


if __name__ == "__main__":
    app()
