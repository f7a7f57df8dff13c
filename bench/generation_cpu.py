"""CPU per answer of the worker's generation step alone, on one event loop.

Runs the `openai_compatible` answerer and the worker's own generation code (workers/generation.py: upstream
stream, token coalescing, `token` events through the replay-log script into a real Redis) for N answers at
once, against the fake upstream in another process, and prints this process's CPU (user + system) per answer.
Retrieval, Celery and the API are not in it: this is the floor the generation step sets on a worker's CPU per
answer, and the place to measure a change to it.

    .venv/bin/python -m bench.generation_cpu --redis-url redis://127.0.0.1:6379/3 --answers 200 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
import uuid

import httpx
import redis.asyncio as aioredis

from shared.providers.openai_compatible import OpenAICompatibleAnswerer, build_openai_compatible_answerer
from shared.settings import Settings
from shared.store import ScoredChunk
from shared.streams.append_batcher import AppendBatcher
from shared.streams.publisher import AsyncEventPublisher
from workers.generation import Generated, stream_answer


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _chunk() -> ScoredChunk:
    text = "KV 缓存保存注意力层已经计算过的键和值，解码下一个词时不必重算。" * 4
    return ScoredChunk(chunk_id="c1", doc_id="d1", source="kb.md", text=text, score=1.0)


async def _round(
    answerer: OpenAICompatibleAnswerer, client: aioredis.Redis, answers: int, window_s: float
) -> tuple[float, float]:
    chunks = [_chunk()]
    batcher = AppendBatcher(client)

    async def one() -> Generated:
        job_id = uuid.uuid4().hex
        publisher = AsyncEventPublisher(batcher, job_id, 60)
        return await stream_answer(answerer.astream("什么是 KV 缓存？", chunks), publisher, window_s)

    started_cpu, started = _cpu_s(), time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(answers)))
    cpu, wall = _cpu_s() - started_cpu, time.perf_counter() - started
    assert all(r.pieces > 0 for r in results)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    parser.add_argument("--answers", type=int, default=200, help="answers generated at once per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=50, help="tokens per answer")
    parser.add_argument("--token-delay-ms", type=float, default=5.0)
    parser.add_argument("--coalesce-ms", type=float, default=15.0)
    parser.add_argument("--fake-port", type=int, default=18799)
    args = parser.parse_args()

    fake = subprocess.Popen(
        [sys.executable, "-m", "harness.fakes.zhipu_server", "--port", str(args.fake_port), "--no-auth"]
        + ["--first-token-delay-ms", "50", "--token-delay-ms", str(args.token_delay_ms)]
        + ["--tokens-count", str(args.tokens), "--log-level", "warning"],
    )
    base = f"http://127.0.0.1:{args.fake_port}/api/paas/v4"
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{args.fake_port}/_requests", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        os.environ.update(LLM_PROVIDER="openai_compatible", LLM_BASE_URL=base, LLM_API_KEY="bench.key")
        settings = Settings()

        async def run() -> None:
            # One client each, made once and warmed, as a worker process holds them (workers/runtime.py).
            client = aioredis.Redis.from_url(args.redis_url)
            answerer = build_openai_compatible_answerer(settings)
            try:
                await _round(answerer, client, args.answers, args.coalesce_ms / 1000)  # warm-up: connections
                for number in range(1, args.rounds + 1):
                    cpu, wall = await _round(answerer, client, args.answers, args.coalesce_ms / 1000)
                    print(
                        f"round {number}: {args.answers} answers of {args.tokens} tokens at once, "
                        f"TOKEN_COALESCE_MS={args.coalesce_ms:g}: CPU {cpu * 1000 / args.answers:.2f} ms per answer "
                        f"(wall {wall:.2f} s)",
                        flush=True,
                    )
            finally:
                await answerer.client.close()
                await client.aclose()

        asyncio.run(run())
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
