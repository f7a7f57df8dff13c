"""Stream concurrency: N answers streamed at once through one API process and one query worker process.

For each N, N clients call `GET /stream_chat` with `Accept: text/event-stream` (submit and relay in one
request, the seed's endpoint and the heavier path for the API: it subscribes before it dispatches) at the
same instant, from one asyncio event loop with one pooled client sized for N connections (aiohttp, or httpx
with `--client httpx`: bench/load_clients.py). Every stream
is checked event by event: ids 1, 2, 3, ... with no gap, exactly the fake server's 50 tokens in order, and
exactly one terminal event, a `done`.

The fake Zhipu server (50 ms to the first token, 5 ms per token, 50 tokens) runs in a child process of its
own, so its event loop does not share a GIL with the clients. The open-file limit is raised to the hard
limit first; the stack's processes inherit it. CPU seconds per process during each round show which one
saturates the 2 cores.

With `--repeat R` every round runs R times in a row, all on ONE pooled client (max(N) + 10
connections), the way a gateway or a load test holds connections: connections idle between rounds are
reused, so a server that closes idle keep-alive connections as a client reuses them loses streams (issue
13). Lost streams are reported with their exception class. `--path queries` makes each client
`POST /v1/queries` then `GET` its stream (two requests per answer) instead of one `/stream_chat`.
`--providers zhipu,openai_compatible` (the default) starts one stack per `LLM_PROVIDER`, one after the other
against the same fake server, and prints each provider's CPU per answer and TTFT p50 against the first one's.
`--url` targets a stack already running (e.g. `scripts/stack.sh up` pointed at the fake server started
here on `--fake-port`) instead of starting one.

Run from the repository root:  .venv/bin/python -m bench.stream_concurrency --help
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any
from xmlrpc.client import ServerProxy

import httpx
import redis
import typer
from rich.console import Console
from rich.table import Table
from supervisor.xmlrpc import SupervisorTransport

from bench.host import machine
from bench.load_clients import ClientKind, Stream, StreamClient, stream_client
from bench.stream_latency import (
    COLLECTION,
    FAKE_CONFIG,
    QUESTION,
    index_kb,
    pct,
    start_stack,
    write_section,
)
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import ROOT, RedisServer

SECTION = "## Stream concurrency (bench/stream_concurrency.py)"
SECTION_POOLED = "## Stream concurrency, repeated rounds on one pooled client (bench/stream_concurrency.py --repeat)"
EXCEPTION_LINE = re.compile(r"^((?:[a-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception)): ", re.MULTILINE)
TARGET_TTFT_P50_MS = 250.0

console = Console(width=None if sys.stdout.isatty() else 130)
app = typer.Typer(add_completion=False, rich_markup_mode="rich", help=__doc__)


@dataclass
class Round:
    n: int
    streams: list[Stream]
    wall_s: float
    cpu_s: dict[str, float]
    peaks: dict[str, int]
    fake: dict[str, int] = field(default_factory=dict)
    stack: str = "as is"
    log_errors: Counter[str] = field(default_factory=Counter)

    def figures(self) -> dict[str, str]:
        accepted = [s for s in self.streams if not s.refused]
        ttft = [s.ttft_ms for s in accepted if s.texts]
        worker = [s.worker_first_token_ms for s in accepted if s.worker_first_token_ms is not None]
        total = [s.total_ms for s in accepted if s.terminals == ["done"]]
        tokens = sum(len(s.texts) for s in self.streams)
        return {
            "stack": self.stack,
            "streams": str(self.n),
            "refused": str(self.n - len(accepted)),
            "intact": str(sum(s.intact for s in self.streams)),
            "lost ch": str(sum(s.lost for s in accepted)),
            "dup ch": str(sum(s.duplicated for s in accepted)),
            "bad end": str(sum(s.terminals != ["done"] for s in accepted)),
            "TTFT p50": f"{pct(ttft, 50):.0f}",
            "TTFT p90": f"{pct(ttft, 90):.0f}",
            "TTFT p99": f"{pct(ttft, 99):.0f}",
            "worker 1st p50": f"{pct(worker, 50):.0f}",
            "total p50": f"{pct(total, 50):.0f}",
            "total p99": f"{pct(total, 99):.0f}",
            "wall s": f"{self.wall_s:.2f}",
            "tokens/s": f"{tokens / self.wall_s:.0f}",
        }

    def served_cpu_s(self) -> dict[str, float]:
        """CPU seconds of the processes that serve answers: the API and every query worker."""
        return {name: cpu for name, cpu in self.cpu_s.items() if name.startswith(("api", "worker"))}

    def cpu_ms_per_answer(self) -> float:
        """API + query workers' CPU per answer that ended with `done`, in ms."""
        answers = max(1, sum(s.terminals == ["done"] for s in self.streams))
        return sum(self.served_cpu_s().values()) / answers * 1000

    def cpu_line(self) -> str:
        shares = ", ".join(f"{name} {cpu:.1f} s ({cpu / self.wall_s:.0%})" for name, cpu in self.cpu_s.items())
        answers = max(1, sum(s.terminals == ["done"] for s in self.streams))
        per_process = [f"{name} {cpu / answers * 1000:.1f}" for name, cpu in self.served_cpu_s().items()]
        per_answer = ", ".join([*per_process, f"API + workers {self.cpu_ms_per_answer():.1f}"])
        peaks = ", ".join(f"{name} {value}" for name, value in self.peaks.items())
        return (
            f"{self.stack}, N={self.n}: CPU {shares}; CPU ms per answer: {per_answer}; peaks: {peaks}, "
            f"LLM streams open at once on the fake server {self.fake.get('max_active_streams')}"
        )


async def run_streams(client: StreamClient, n: int, timeout: float, path: str) -> tuple[list[Stream], float]:
    go = asyncio.Event()
    tasks = [asyncio.create_task(client.stream(path, QUESTION, COLLECTION, go)) for _ in range(n)]
    await asyncio.sleep(0.1)  # every task is waiting on `go`
    started = time.perf_counter()
    go.set()
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    wall = time.perf_counter() - started
    streams = [t.result() if t in done else Stream(failure=f"no end within {timeout:.0f} s") for t in tasks]
    return streams, wall


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0


async def sample_peaks(pids: dict[str, int], redis_client: redis.Redis, stop: asyncio.Event) -> dict[str, int]:
    """Peak open files of the API and worker, and peak Redis clients (server-wide), every 0.2 s."""
    peaks: dict[str, int] = {}
    while not stop.is_set():
        for name, pid in pids.items():
            peaks[f"{name} fds"] = max(peaks.get(f"{name} fds", 0), open_files(pid))
        clients = int(redis_client.info("clients")["connected_clients"])
        peaks["redis clients"] = max(peaks.get("redis clients", 0), clients)
        await asyncio.sleep(0.2)
    return peaks


async def measure_round(
    client: StreamClient, n: int, timeout: float, path: str, pids: dict[str, int], redis_client: redis.Redis
) -> Round:
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    stop = asyncio.Event()
    watched: dict[str, int] = {k: pid for k, pid in pids.items() if k.startswith(("api", "worker"))}
    sampler = asyncio.create_task(sample_peaks(watched, redis_client, stop))
    streams, wall = await run_streams(client, n, timeout, path)
    stop.set()
    peaks = await sampler
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    return Round(n, streams, wall, cpu, peaks)


def serve_fake(conn: Connection, port: int = 0) -> None:
    """Child process: run the fake Zhipu server until the parent says stop."""
    with ZhipuFakeServer(port=port, **FAKE_CONFIG) as fake:
        conn.send((fake.url, fake.base_url))
        conn.recv()


POOL_PATCH = """\
# Written by bench/stream_concurrency.py --redis-pool-size: simulates passing max_connections to every pool.
import redis.asyncio.connection, redis.connection

for _cls in (redis.connection.ConnectionPool, redis.asyncio.connection.ConnectionPool):
    def _init(self, *args, max_connections=None, _orig=_cls.__init__, **kwargs):
        _orig(self, *args, max_connections=max_connections or {size}, **kwargs)
    _cls.__init__ = _init
"""


def pool_size_env(tmp: Path, size: int) -> dict[str, str]:
    """PYTHONPATH for the stack with a sitecustomize that makes redis-py pools default to `size`."""
    folder = tmp / "pool-patch"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(POOL_PATCH.format(size=size))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")]))}


def raise_open_file_limit() -> tuple[int, int]:
    """Soft limit up to the hard one (the stack's processes inherit it); (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def redis_pid(client: redis.Redis) -> int:
    """The Redis server's pid if it runs on this machine (its CPU then counts), else 0."""
    pid = int(client.info("server")["process_id"])
    return pid if Path(f"/proc/{pid}/exe").exists() else 0


def exceptions_logged(logs: list[Path], offsets: dict[Path, int]) -> Counter[str]:
    """Exception lines (`module.SomeError: message`) the stack logged since `offsets`, by exception name."""
    found: Counter[str] = Counter()
    for log in logs:
        with log.open("rb") as f:
            f.seek(offsets.get(log, 0))
            text = f.read().decode(errors="replace")
        found.update(m.group(1) for m in EXCEPTION_LINE.finditer(text))
    return found


def log_sizes(logs: list[Path]) -> dict[Path, int]:
    return {log: log.stat().st_size for log in logs if log.exists()}


def failures(rounds: list[Round]) -> list[str]:
    """The distinct ways streams went wrong and the exceptions the stack logged, per round."""
    lines = []
    for r in rounds:
        reasons = Counter(s.failure or ",".join(s.terminals) or "no terminal" for s in r.streams if not s.intact)
        lines += [f"{r.stack}, N={r.n}: {count} streams × {reason}" for reason, count in reasons.most_common(4)]
        lines += [f"{r.stack}, N={r.n}: stack logged {count} × {name}" for name, count in r.log_errors.most_common(4)]
    return lines


def lost_summary(rounds: list[Round]) -> str:
    """Streams intact over all rounds, and the lost ones by exception class."""
    streams = [s for r in rounds for s in r.streams]
    intact = sum(s.intact for s in streams)
    lost = Counter(s.exception or "no exception (bad events)" for s in streams if not s.intact)
    by_class = "; ".join(f"{count} × {name}" for name, count in lost.most_common()) or "none"
    return f"{intact}/{len(streams)} streams intact over {len(rounds)} round(s); lost streams by exception: {by_class}"


def provider_ratios(rounds: list[Round]) -> list[str]:
    """Each provider's CPU per answer and TTFT p50 against the first provider's, at the same N in the same run."""
    by_stack = {(r.stack, r.n): r for r in rounds}
    stacks = list(dict.fromkeys(r.stack for r in rounds))
    lines = []
    for stack in stacks[1:]:
        for r in (r for r in rounds if r.stack == stack):
            if (base := by_stack.get((stacks[0], r.n))) is None:
                continue
            p50, base_p50 = float(r.figures()["TTFT p50"]), float(base.figures()["TTFT p50"])
            lines.append(
                f"N={r.n}: {stack} CPU {r.cpu_ms_per_answer():.1f} ms per answer vs {stacks[0]} "
                f"{base.cpu_ms_per_answer():.1f} ms (×{r.cpu_ms_per_answer() / base.cpu_ms_per_answer():.2f}); "
                f"TTFT p50 {p50:.0f} vs {base_p50:.0f} ms (×{p50 / max(base_p50, 1e-9):.2f}); intact "
                f"{r.figures()['intact']}/{r.n} vs {base.figures()['intact']}/{base.n}"
            )
    return lines


def run_stack(
    label: str,
    extra_env: dict[str, str],
    plan: Plan,
    concurrency: int,
    fake: tuple[str, str, int],
    redis_server: RedisServer,
    tmp: Path,
) -> list[Round]:
    """Start a stack, index docs/kb, warm it, and run the rounds."""
    fake_url, fake_base_url, fake_pid = fake
    redis_url = redis_server.url(redis_server.claim_db(f"bench.stream_concurrency {label}"))
    redis_client = redis.Redis.from_url(redis_url, decode_responses=True)
    name = "concurrency-" + "".join(c for c in label if c.isalnum())
    stack = start_stack(name, redis_url, fake_base_url, tmp, concurrency, extra_env)
    try:
        prepare(stack.base_url, label)
        pids = {"client": os.getpid(), "fake": fake_pid, "api": stack.processes["api"].pid,
                "worker": stack.processes["query"].pid, "redis": redis_pid(redis_client)}  # fmt: skip
        logs = [tmp / f"{name}-{process}.log" for process in ("api", "query")]
        return asyncio.run(run_rounds(stack.base_url, label, plan, fake_url, pids, logs, redis_client))
    except Exception:
        console.print(f"[red]failed[/]; stack logs are kept in {tmp}")
        raise
    finally:
        stack.stop()
        redis_client.close()


@dataclass
class Plan:
    """What each stack runs: these N, each `repeat` times, over `path`, on one pooled client."""

    counts: list[int]
    repeat: int
    timeout: float
    path: str
    client: ClientKind = "aiohttp"


def prepare(base_url: str, label: str) -> None:
    """Index docs/kb into the bench collection and warm the query worker with one answer."""
    with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
        console.print(f"[bold]{label}[/]: indexed docs/kb, {index_kb(client)}")
        params = {"param": QUESTION, "collection": COLLECTION}
        client.get("/stream_chat", params=params).raise_for_status()  # warm the worker's caches


async def run_rounds(
    base_url: str,
    label: str,
    plan: Plan,
    fake_url: str,
    pids: dict[str, int],
    logs: list[Path],
    redis_client: redis.Redis,
) -> list[Round]:
    """Every round of the plan on ONE pooled client, so idle connections are reused from round to round."""
    rounds: list[Round] = []
    pids = {k: v for k, v in pids.items() if v}
    client = stream_client(plan.client, base_url, max(plan.counts), plan.timeout)
    try:
        for n in plan.counts:
            for i in range(1, plan.repeat + 1):
                httpx.post(f"{fake_url}/_control/reset", trust_env=False).raise_for_status()
                offsets = log_sizes(logs)
                name = label if plan.repeat == 1 else f"{label} {i}/{plan.repeat}"
                console.print(f"{name}: [bold]{n}[/] streams at once…")
                r = await measure_round(client, n, plan.timeout, plan.path, pids, redis_client)
                await asyncio.sleep(2)  # let the worker finish its bookkeeping before the next round
                r.stack, r.log_errors = name, exceptions_logged(logs, offsets)
                r.fake = httpx.get(f"{fake_url}/_requests", trust_env=False).json()["counters"]
                rounds.append(r)
                console.print("  " + ", ".join(f"{k} {v}" for k, v in r.figures().items()))
    finally:
        await client.aclose()
    return rounds


COLUMNS = ["stack", "streams", "refused", "intact", "lost ch", "dup ch", "bad end", "TTFT p50", "TTFT p90",
           "TTFT p99", "worker 1st p50", "total p50", "total p99", "wall s", "tokens/s"]  # fmt: skip


def markdown(command: str, rounds: list[Round], query_concurrency: int, nofile: tuple[int, int]) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` — run on {time.strftime('%Y-%m-%d')}, {machine()}. The 2 cores are shared by "
        "everything: the benchmark client (one asyncio loop), the fake Zhipu server (its own process, one event "
        f"loop), the API (one uvicorn process), the query worker (one Celery process, `-P threads -c "
        f"{query_concurrency}`), an idle index worker and Redis. Open-file limit raised from {nofile[0]} to "
        f"{nofile[1]} for the benchmark and the processes it starts.",
        "",
        "The fake Zhipu server waits 50 ms before the first token and 5 ms between tokens, 50 tokens per answer. "
        "docs/kb is indexed through the job API, one answer warms the worker, then for each N the client opens N "
        "`GET /stream_chat?param=…` streams with `Accept: text/event-stream` at the same instant (one request per "
        "answer: submit and relay; hybrid retrieval, the default). A stream is intact when its ids run 1, 2, 3, … "
        "with no gap, its text is exactly the 50 configured tokens in order (the worker may coalesce tokens of one "
        "window into one event), and it ends with exactly one `done`. "
        "refused: no HTTP 200; lost ch, dup ch (characters, against the 50 tokens' text) and bad end (not exactly "
        "one `done`, e.g. the connection dropped) count the streams that got a 200. TTFT (streams that got a "
        "token): request sent → first `token` event; worker 1st: the `done` event's `timings_ms.first_token` "
        "(from the start of "
        "the answer, just after the job is marked running, to the first LLM token, inside the worker); total "
        "(streams that ended with `done`): request sent → `done`; wall: all streams started → the last one ended; "
        "tokens/s: tokens received by all clients / wall. Target: 0 lost or "
        f"duplicated tokens, 0 bad endings, TTFT p50 ≤ {TARGET_TTFT_P50_MS:g} ms at N = 500. Stack `as is` runs "
        "the code unchanged; a `pools …` stack (`--redis-pool-size`) runs it with every redis-py connection pool "
        "defaulting to that size instead of redis-py 8's 100, to see past that limit.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(r.figures()[c] for c in COLUMNS) + " |" for r in rounds],
        "",
        "CPU time per process during each round (share of the round's wall time; 200 % is both cores; Redis is "
        "shared with other users of the machine), CPU per answer that ended with `done`, and peaks:",
        "",
        *[f"- {r.cpu_line()}" for r in rounds],
    ]
    if bad := failures(rounds):
        lines += ["", "Streams that were not intact, and exceptions in the stack's logs:", "", *[f"- {x}" for x in bad]]
    lines += ["", *[f"- {x}" for x in verdicts(rounds)]]
    lines += ["", "What limits the figures, from the measurements above:", "", *[f"- {x}" for x in findings(rounds)]]
    return "\n".join(lines) + "\n"


def verdicts(rounds: list[Round]) -> list[str]:
    """The target at N >= 500: every stream intact and TTFT p50 <= 250 ms."""
    lines = []
    for r in (r for r in rounds if r.n >= 500):
        figures = r.figures()
        intact, p50 = figures["intact"] == str(r.n), float(figures["TTFT p50"])
        met = "met" if intact and p50 <= TARGET_TTFT_P50_MS else "NOT met"
        lines.append(
            f"Target at N={r.n} ({r.stack}): every stream intact ({figures['intact']}/{r.n}) and TTFT p50 ≤ "
            f"{TARGET_TTFT_P50_MS:g} ms ({p50:.0f} ms): {met}."
        )
    return lines


def findings(rounds: list[Round]) -> list[str]:
    """Conclusions the figures support: refused streams and why, and the query worker's CPU ceiling."""
    lines = []
    for r in rounds:
        if pool := r.log_errors.get("redis.exceptions.MaxConnectionsError"):
            lines.append(
                f"{r.stack}, N={r.n}: {r.figures()['refused']} streams refused and "
                f"{r.figures()['bad end']} cut off; the stack logged {pool} MaxConnectionsError: a redis-py 8 "
                "connection pool holds at most 100 connections unless told otherwise (`max_connections=None` "
                "means 100), and the API takes one per open stream plus one per request in flight."
            )
    if big := [r for r in rounds if not any(s.refused for s in r.streams)]:
        r = max(big, key=lambda r: r.n)
        worker_s = sum(cpu for name, cpu in r.cpu_s.items() if name.startswith("worker"))
        per_answer = worker_s / max(1, sum(s.terminals == ["done"] for s in r.streams))
        lines.append(
            f"{r.stack}, N={r.n}: the query worker processes used {worker_s:.1f} CPU s in {r.wall_s:.1f} s "
            f"({worker_s / r.wall_s:.0%} of one core), {per_answer * 1000:.1f} ms per answer, i.e. at most about "
            f"{1 / max(per_answer, 1e-6):.0f} answers/s per core; {r.n} answers need at least "
            f"{r.n * per_answer:.1f} s of it; {r.fake.get('max_active_streams')} LLM streams were ever open at once "
            "on the fake server."
        )
    return lines


def supervised_pids(run_dir: Path) -> dict[str, int]:
    """Program name -> pid of what supervisord runs for `make up` in run_dir (its XML-RPC socket)."""
    transport = SupervisorTransport(None, None, f"unix://{run_dir / 'supervisor.sock'}")
    rpc = ServerProxy("http://127.0.0.1", transport=transport)
    processes: list[dict[str, Any]] = rpc.supervisor.getAllProcessInfo()  # type: ignore[assignment]
    return {info["name"]: int(info["pid"]) for info in processes if info["pid"]}


def run_external(url: str, run_dir: Path, redis_url: str, plan: Plan, fake: tuple[str, str, int]) -> list[Round]:
    """Run the rounds against a stack already running (`scripts/stack.sh up`), its pids and logs in run_dir."""
    fake_url, _, fake_pid = fake
    redis_client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        prepare(url, url)
        # The API and every query worker process `make up` runs under supervisord (QUERY_WORKERS), each measured
        # on its own; their pids from supervisord itself.
        running = supervised_pids(run_dir)
        workers = sorted(name for name in running if name.startswith("worker-query-"))
        pids = {"api": running["api"]} if "api" in running else {}
        pids |= {("worker" if len(workers) == 1 else f"worker {name[13:]}"): running[name] for name in workers}
        pids |= {"client": os.getpid(), "fake": fake_pid, "redis": redis_pid(redis_client)}
        logs = [run_dir / "api.log", *(run_dir / f"{name}.log" for name in workers)]
        return asyncio.run(run_rounds(url, "make up", plan, fake_url, pids, logs, redis_client))
    finally:
        redis_client.close()


def pooled_markdown(command: str, rounds: list[Round], plan: Plan) -> str:
    """The docs section of a --repeat run: every round, the intact total, lost streams by exception class."""
    request = "`POST /v1/queries` then `GET` its stream_url" if plan.path == "queries" else "`GET /stream_chat`"
    lines = [
        SECTION_POOLED,
        "",
        f"Command: `{command}` — run on {time.strftime('%Y-%m-%d')}, {machine()}. Each of the "
        f"{len(rounds)} rounds opens N streams at the same instant ({request}, with `Accept: text/event-stream`), "
        f"all rounds on one pooled {plan.client} client (max(N) + 10 connections, a 5 s keep-alive "
        "expiry; bench/load_clients.py), so connections left idle by one round are reused by the next. "
        "Fake Zhipu server as above (50 ms to the first token, 5 ms per token, 50 tokens); columns as above.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
        *["| " + " | ".join(r.figures()[c] for c in COLUMNS) + " |" for r in rounds],
        "",
        f"**{lost_summary(rounds)}.**",
    ]
    if bad := failures(rounds):
        lines += ["", "Streams that were not intact, and exceptions in the stack's logs:", "", *[f"- {x}" for x in bad]]
    lines += ["", "CPU per process and peaks:", "", *[f"- {r.cpu_line()}" for r in rounds]]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    streams: Annotated[str, typer.Option(help="Comma-separated numbers of concurrent streams, one round each.")] = (
        "50,200,500"
    ),
    repeat: Annotated[int, typer.Option(min=1, help="Run each round this many times, all on one pooled client.")] = 1,
    path: Annotated[
        str, typer.Option(help="stream_chat (one request per answer) or queries (POST /v1/queries, then its stream).")
    ] = "stream_chat",
    url: Annotated[
        str | None,
        typer.Option(
            help="Target this running stack instead of starting one. Start it pointed at the fake server this run "
            "starts on --fake-port: ZHIPU_API_KEY=bench.key ZHIPUAI_BASE_URL=http://127.0.0.1:PORT/api/paas/v4.",
        ),
    ] = None,
    client: Annotated[
        str,
        typer.Option(
            help="The load generator: aiohttp, or httpx (which costs the shared cores about 30 times more CPU per "
            "stream at N = 500; bench/load_clients.py)."
        ),
    ] = "aiohttp",
    run_dir: Annotated[Path, typer.Option(help="With --url: the stack's RUN_DIR (pid files, logs).")] = ROOT / ".run",
    fake_port: Annotated[int, typer.Option(help="Port of the fake Zhipu server (0: any free port).")] = 0,
    query_concurrency: Annotated[
        int | None, typer.Option(help="Threads of the one query worker process (-c). Default: the largest N.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds a round may take before its open streams are dropped.")] = 120,
    providers: Annotated[
        str,
        typer.Option(
            help="Comma-separated LLM_PROVIDER values, one stack each, in this order, against the same fake server "
            "(openai_compatible reaches it through ZHIPUAI_BASE_URL and ZHIPU_API_KEY); ratios are against the first."
        ),
    ] = "openai_compatible,zhipu",
    redis_pool_size: Annotated[
        int,
        typer.Option(
            help="Also run a second stack whose redis-py connection pools default to this size instead of 100 "
            "(a sitecustomize on its PYTHONPATH simulates the fix). 0: only the code as it is.",
        ),
    ] = 0,
    docs: Annotated[Path, typer.Option(help="Markdown file whose section gets the results.")] = ROOT
    / "docs"
    / "benchmarks.md",
    write_docs: Annotated[bool, typer.Option(help="Write the results into --docs.")] = False,
    keep_logs: Annotated[bool, typer.Option(help="Keep the stacks' logs (their folder is printed).")] = False,
) -> None:
    """Open N SSE answer streams at once (for each N), check every token, and time them.

    Starts the fake Zhipu server in a child process (50 ms to the first token, 5 ms per token, 50 tokens),
    starts a private redis-server on a free port, starts one API process and one query
    worker (`-P threads -c --query-concurrency`), indexes docs/kb, then for each N opens N `/stream_chat`
    SSE streams at the same instant. Prints per N: intact streams, lost and duplicated tokens, streams not
    ending with exactly one `done`, TTFT p50/p90/p99, wall time, tokens/s, CPU per process, and the
    exceptions the stack logged. With --url it starts no stack and uses the one running there (its Redis:
    REDIS_URL).

    Example: .venv/bin/python -m bench.stream_concurrency --streams 50,200 --redis-pool-size 10000

    Example: start the fake on port 18765 and a stack pointed at it, then
      .venv/bin/python -m bench.stream_concurrency --url http://127.0.0.1:18400 --run-dir .run-bench
      --fake-port 18765 --streams 500 --repeat 5 --path queries
    """
    if path not in ("stream_chat", "queries"):
        raise typer.BadParameter("--path must be stream_chat or queries")
    if client not in ("aiohttp", "httpx"):
        raise typer.BadParameter("--client must be aiohttp or httpx")
    counts = [int(n) for n in streams.split(",") if n.strip()]
    plan = Plan(counts, repeat, timeout, path, "httpx" if client == "httpx" else "aiohttp")
    concurrency = query_concurrency or max(counts)
    nofile = raise_open_file_limit()
    console.print(f"machine: {machine()}")
    console.print(f"open-file limit {nofile[0]} → {nofile[1]}; streams {counts} × {repeat}; path {path}")
    console.print(f"load generator: {client} (bench/load_clients.py)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    redis_server = None if url else RedisServer.start(tmp)
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    fake = spawn.Process(target=serve_fake, args=(child, fake_port), name="zhipu-fake")
    fake.start()
    rounds: list[Round] = []
    try:
        fake_urls = (*parent.recv(), fake.pid or 0)
        if url:
            redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
            rounds += run_external(url, run_dir, redis_url, plan, fake_urls)
        else:
            assert redis_server is not None
            names = [name.strip() for name in providers.split(",") if name.strip()]
            stacks: list[tuple[str, dict[str, str]]] = [(name, {"LLM_PROVIDER": name}) for name in names]
            if redis_pool_size:
                pools = pool_size_env(tmp, redis_pool_size)
                stacks += [(f"{name}, pools {redis_pool_size}", {**env, **pools}) for name, env in stacks]
            for label, extra_env in stacks:
                rounds += run_stack(label, extra_env, plan, concurrency, fake_urls, redis_server, tmp)
    finally:
        parent.send("stop")
        fake.join(15)
        if redis_server:
            redis_server.stop()
    if keep_logs:
        console.print(f"stack logs: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"Concurrent SSE streams ({path}; ms unless noted)")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "stack" else "right")
    for r in rounds:
        table.add_row(*(r.figures()[c] for c in COLUMNS))
    console.print(table)
    for r in rounds:
        console.print(r.cpu_line())
    for line in failures(rounds):
        console.print(f"[red]{line}[/]")
    for line in findings(rounds):
        console.print(line)
    for line in verdicts(rounds):
        console.print(f"[bold]{line}[/]")
    for line in provider_ratios(rounds):
        console.print(f"[bold]{line}[/]")
    console.print(f"[bold]{lost_summary(rounds)}[/]")
    if write_docs:
        command = " ".join([".venv/bin/python -m bench.stream_concurrency", *sys.argv[1:]])
        if repeat > 1 or url:
            write_section(docs, SECTION_POOLED, pooled_markdown(command, rounds, plan))
        else:
            write_section(docs, SECTION, markdown(command, rounds, concurrency, nofile))
        console.print(f"results written to {docs}")


if __name__ == "__main__":
    app()
