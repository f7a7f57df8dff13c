"""The machine's floor for N concurrent streams: the bench's clients straight to the fake upstream, no ragqueue.

`bench/stream_concurrency.py` measures ragqueue with its clients, the fake Zhipu server, Redis, the API and
the workers all on the same cores. This bench keeps only the two ends: each of the same load generators
(bench/load_clients.py: one event loop, a connection per stream) opens N streaming chat completions at the
same instant straight on the fake server (50 ms to the first token, 5 ms per token, 50 tokens, in a child
process of its own), times each stream's first token and drains the rest without parsing it. Nothing
ragqueue does can make a stream's first token come sooner than it does here: whatever time to first token
this prints at N is a lower bound for ragqueue's at the same N on this machine.

`--through relay` puts one hop in between: bench/minimal_relay.py, the smallest answer server ragqueue's own
libraries make (FastAPI, sse-starlette and uvicorn in front, the `openai` SDK behind, token coalescing; one
process, no queue, no Redis, no retrieval). Its CPU per answer is a floor for ragqueue's API + workers, and
its time to first token a floor for ragqueue's, on this machine.

Run from the repository root:  .venv/bin/python -m bench.stream_floor --help
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import httpx
import typer
from rich.console import Console

from bench.host import machine
from bench.stream_concurrency import TARGET_TTFT_P50_MS, cpu_seconds, raise_open_file_limit, serve_fake
from bench.stream_latency import QUESTION, pct

CHAT_PATH = "/chat/completions"
HEADERS = {"Authorization": "Bearer bench.key", "Accept": "text/event-stream"}
# A chunk whose delta carries text (the upstream's), or a `token` event's data (the relay's).
FIRST_TOKEN = re.compile(rb'"(?:content|text)": ?"[^"]')

console = Console(width=None if sys.stdout.isatty() else 130)
app = typer.Typer(add_completion=False, rich_markup_mode="rich", help=__doc__)


@dataclass
class FloorStream:
    ttft_ms: float = float("nan")
    total_ms: float = float("nan")
    failure: str = ""

    async def read(self, raw: AsyncIterator[bytes], started: float) -> None:
        """Time the first token, then drain the rest unparsed: the cheapest a client can be."""
        seen = b""
        async for data in raw:
            if self.ttft_ms != self.ttft_ms:  # NaN: no token yet
                seen += data
                if FIRST_TOKEN.search(seen):
                    self.ttft_ms = (time.perf_counter() - started) * 1000


def chat_body() -> dict[str, object]:
    return {"model": "glm-4-flash", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}


async def floor_httpx(client: httpx.AsyncClient, go: asyncio.Event) -> FloorStream:
    stream = FloorStream()
    await go.wait()
    started = time.perf_counter()
    try:
        async with client.stream("POST", CHAT_PATH, json=chat_body(), headers=HEADERS) as response:
            if response.status_code != 200:
                stream.failure = f"HTTP {response.status_code}"
                return stream
            await stream.read(response.aiter_raw(), started)
    except (httpx.HTTPError, OSError) as exc:
        stream.failure = f"{type(exc).__qualname__}: {exc}"
    stream.total_ms = (time.perf_counter() - started) * 1000
    return stream


async def floor_aiohttp(request: Callable[[], Any], go: asyncio.Event) -> FloorStream:
    """One stream on aiohttp: `request()` opens it (a session's `post` or `get`, not yet awaited)."""
    stream = FloorStream()
    await go.wait()
    started = time.perf_counter()
    try:
        async with request() as response:
            if response.status != 200:
                stream.failure = f"HTTP {response.status}"
                return stream
            await stream.read(response.content.iter_any(), started)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        stream.failure = f"{type(exc).__qualname__}: {exc}"
    stream.total_ms = (time.perf_counter() - started) * 1000
    return stream


async def run_round(
    n: int, pids: dict[str, int], one: Callable[[asyncio.Event], Coroutine[Any, Any, FloorStream]]
) -> str:
    go = asyncio.Event()
    tasks = [asyncio.create_task(one(go)) for _ in range(n)]
    await asyncio.sleep(0.1)  # every task is waiting on `go`
    pids = {"client": os.getpid(), **pids}
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    go.set()
    streams = await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    ok = [s for s in streams if not s.failure]
    per_stream = ", ".join(
        f"{name} {(cpu_seconds(pid) - cpu_before[name]) / max(1, len(ok)) * 1000:.1f}" for name, pid in pids.items()
    )
    ttft = [s.ttft_ms for s in ok]
    return (
        f"{pct(ttft, 50):.0f} | {pct(ttft, 90):.0f} | {pct(ttft, 99):.0f} | "
        f"{pct([s.total_ms for s in ok], 50):.0f} | {len(ok)}/{n} | {wall:.2f} | {per_stream} |"
    )


async def run_rounds(kind: str, base_url: str, counts: list[int], pids: dict[str, int], repeat: int) -> None:
    """`kind`: a load generator straight on the upstream at `base_url`, or `relay` (aiohttp through the relay there)."""
    size = max(counts) + 10
    one: Callable[[asyncio.Event], Awaitable[FloorStream]]
    close: Callable[[], Awaitable[None]]
    if kind == "httpx":
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120, trust_env=False)
        one, close = (lambda go: floor_httpx(client, go)), client.aclose  # noqa: E731
    else:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=size), timeout=aiohttp.ClientTimeout(total=120), trust_env=False
        )

        def request() -> Any:
            if kind == "relay":
                ask = {"param": QUESTION}
                return session.get(f"{base_url}/stream_chat", params=ask, headers={"Accept": "text/event-stream"})
            return session.post(base_url + CHAT_PATH, json=chat_body(), headers=HEADERS)

        one, close = (lambda go: floor_aiohttp(request, go)), session.close  # noqa: E731
    try:
        for n in counts:
            for i in range(1, repeat + 1):
                console.print(f"| {kind} | {n} | {i} | " + await run_round(n, pids, one))
    finally:
        await close()


def _servers(supervisor: int) -> list[int]:
    """The uvicorn worker processes under `supervisor` (not multiprocessing's resource tracker)."""
    listed = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in listed if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


@contextlib.contextmanager
def minimal_relay(upstream_base_url: str, processes: int) -> Iterator[tuple[str, list[int]]]:
    """bench/minimal_relay.py in a child process on a free port: (its URL, its serving pids), once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "bench.minimal_relay:app_from_env", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(processes), "--log-level", "warning"]
    relay = subprocess.Popen(command, env={**os.environ, "RELAY_UPSTREAM_URL": upstream_base_url})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"the minimal relay did not answer on {url}")
        # With several processes uvicorn's supervisor spawns the servers; their CPU is what counts.
        yield url, _servers(relay.pid) if processes > 1 else [relay.pid]
    finally:
        relay.terminate()
        relay.wait(timeout=10)


@app.command()
def main(
    streams: Annotated[str, typer.Option(help="Comma-separated numbers of concurrent streams, one round each.")] = (
        "50,200,500"
    ),
    repeat: Annotated[int, typer.Option(min=1, help="Rounds per N (the first N also warms the connections).")] = 2,
    clients: Annotated[str, typer.Option(help="Comma-separated load generators: aiohttp, httpx.")] = "aiohttp,httpx",
    through: Annotated[
        str,
        typer.Option(
            help="none: the clients straight on the fake upstream. relay: the aiohttp client through "
            "bench/minimal_relay.py, the smallest one-process server of ragqueue's libraries (its CPU per "
            "answer is a floor for ragqueue's)."
        ),
    ] = "none",
    relay_processes: Annotated[int, typer.Option(min=1, help="--through relay: uvicorn worker processes.")] = 1,
) -> None:
    """Open N streams at once on the fake upstream (or through a minimal relay); print TTFT and CPU per stream."""
    if through not in ("none", "relay"):
        raise typer.BadParameter(f"unknown --through {through!r}: none or relay")
    counts = [int(n) for n in streams.split(",")]
    raise_open_file_limit()
    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=serve_fake, args=(child,), daemon=True)
    fake.start()
    try:
        _, base_url = parent.recv()
        console.print(f"{machine()}; fake upstream at {base_url} (pid {fake.pid})")
        console.print(
            "| client | N | round | TTFT p50 | TTFT p90 | TTFT p99 | total p50 | ok | wall s | CPU ms per stream |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        )
        if through == "relay":
            with minimal_relay(base_url, relay_processes) as (relay_url, relay_pids):
                console.print(f"minimal relay at {relay_url} (pids {relay_pids})")
                pids = {"fake": fake.pid or 0, **{f"relay {i}": pid for i, pid in enumerate(relay_pids, start=1)}}
                asyncio.run(run_rounds("relay", relay_url, counts, pids, repeat))
        else:
            for kind in clients.split(","):
                if kind not in ("aiohttp", "httpx"):
                    raise typer.BadParameter(f"unknown client {kind!r}: aiohttp or httpx")
                asyncio.run(run_rounds(kind, base_url, counts, {"fake": fake.pid or 0}, repeat))
        console.print(
            f"A ragqueue stream's first token cannot come sooner than these (target p50 ≤ {TARGET_TTFT_P50_MS:.0f} ms)."
        )
    finally:
        parent.send("stop")
        fake.join(timeout=10)


if __name__ == "__main__":
    app()
