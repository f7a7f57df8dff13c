"""Index throughput: one index job through the ragqueue stack (1, 2, 4 index processes, embedded store or
PostgreSQL) vs the seed's in-process path.

Both embed through the fake Zhipu server with a fixed delay per /embeddings request, so the figures measure how
well each path hides upstream latency, not the speed of a real model. The stack embeds with whatever
`shared/providers/zhipu.py` wires; this script never imports an embedding class for it. The fake runs in this
process, on the same cores as the stack: its CPU per chunk is reported, because it is not the stack's.

Run from the repository root:  .venv/bin/python -m bench.index_throughput --help
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench.host import machine
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.postgres import PostgresServer
from harness.processes import ROOT, RedisServer, Stack
from shared.jobs.records import FINAL_STATES, JobStage

SECTION = "## Index throughput by engine and index processes (bench/index_throughput.py)"
API_KEY = "bench.key"

console = Console(width=None if sys.stdout.isatty() else 120)
app = typer.Typer(add_completion=False, rich_markup_mode="rich", help=__doc__)


ENGINES = ("sqlite", "postgresql")
LAYOUTS = ("prefork", "workers")


@dataclass
class StackRun:
    engine: str
    workers: int
    state: str
    chunks: int
    seconds: float
    requests: int
    texts: int
    peak_kib: int
    cpu_s: float = 0.0
    fake_cpu_s: float = 0.0
    server_cpu_s: float = 0.0  # the API, the query worker, Redis and PostgreSQL, on the same cores
    build_seconds: float = 0.0  # of `seconds`, the search indexes' build at the end (a PostgreSQL first load)
    error: str = ""

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


@dataclass
class SeedRun:
    chunks: int
    seconds: float
    requests: int

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set of a process (VmHWM), so a short spike between two samples is not missed."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class PeakMemory:
    """Samples the peak RSS of some processes and all their descendants (prefork children come and go)."""

    roots: list[int]
    # VmHWM is each process's own high-water mark, so sampling only has to see every process once: a scan of
    # /proc costs CPU on the cores being measured.
    interval: float = 1.0
    peaks: dict[int, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        tree, pending = _proc_children(), list(self.roots)
        while pending:
            pid = pending.pop()
            self.peaks[pid] = max(self.peaks.get(pid, 0), _vm_hwm_kib(pid))
            pending.extend(tree.get(pid, []))

    def __enter__(self) -> PeakMemory:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    @property
    def max_kib(self) -> int:
        return max(self.peaks.values(), default=0)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children that were waited for (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of some processes and all their live descendants (prefork children included)."""
    tree, pending, total = _proc_children(), list(roots), 0.0
    while pending:
        pid = pending.pop()
        total += _cpu_s(pid)
        pending.extend(tree.get(pid, []))
    return total


def stack_env(redis_url: str, data_dir: Path, fake: ZhipuFakeServer, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIPU", "LLM_", "EMBED_"))}
    env.update(
        REDIS_URL=redis_url,
        DATA_DIR=str(data_dir),
        ZHIPU_API_KEY=API_KEY,
        ZHIPUAI_BASE_URL=fake.base_url,
        UPSTREAM_MAX_RETRIES="0",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def run_stack(
    workers: int,
    fake: ZhipuFakeServer,
    redis_url: str,
    corpus: Path,
    tmp: Path,
    extra: dict[str, str],
    timeout: float,
    copies: int = 1,
    engine: str = "sqlite",
    layout: str = "prefork",
    distinct: bool = True,
    server_pids: tuple[int, ...] = (),
) -> StackRun:
    """Start API + N index processes + a query worker, index the corpus copies once, measure.

    `prefork` is `make up`'s layout: one index worker with N prefork children (`-c N`); `workers` starts N
    index workers of one child each. Either way N processes index.
    """
    root = tmp / f"stack-{engine}-{layout}-{workers}"
    stack = Stack(f"bench{workers}", stack_env(redis_url, root / "data", fake, extra), root)
    root.mkdir(parents=True)
    if layout == "prefork":
        processes = [("index-0", "index", "prefork", workers)]
    else:
        processes = [(f"index-{i}", "index", "prefork", 1) for i in range(workers)]
    stack.start([*processes, ("query", "query", "threads", 4)])
    try:
        for copy in range(copies):  # each copy is its own set of documents (named by path)
            write_copy(corpus, stack.import_dir / "corpus" / f"copy-{copy}", copy if distinct else 0)
        fake.reset()
        index_pids = [p.pid for name, p in stack.processes.items() if name.startswith("index-")]
        servers = [*server_pids, *(p.pid for name, p in stack.processes.items() if not name.startswith("index-"))]
        with httpx.Client(base_url=stack.base_url, timeout=30) as client, PeakMemory(index_pids) as memory:
            cpu_before, own_before = tree_cpu_s(index_pids), time.process_time()
            servers_before = tree_cpu_s(servers)
            started = time.perf_counter()
            response = client.post("/v1/collections/bench/index-jobs", json={"paths": ["corpus"]})
            response.raise_for_status()
            job, build_seconds = _wait(client, response.json()["job_id"], timeout)
            seconds = time.perf_counter() - started
            cpu_s, own_cpu_s = tree_cpu_s(index_pids) - cpu_before, time.process_time() - own_before
            server_cpu_s = tree_cpu_s(servers) - servers_before
        counters = fake.counters()
        result, error = job.get("result") or {}, job.get("error") or {}
        return StackRun(
            engine=engine,
            workers=workers,
            state=job["state"],
            chunks=int(result.get("chunks", 0)),
            seconds=seconds,
            requests=counters["embedding_requests"],
            texts=counters["embedding_inputs"],
            peak_kib=memory.max_kib,
            cpu_s=cpu_s,
            fake_cpu_s=own_cpu_s,
            server_cpu_s=server_cpu_s,
            build_seconds=build_seconds,
            error=str(error.get("message", "")),
        )
    finally:
        stack.stop()


_SENTENCE = re.compile(r"[^。！？!?；;]+[。！？!?；;]*")
_REWRITTEN_SUFFIXES = (".md", ".markdown", ".txt")  # plain text, read line by line


def write_copy(corpus: Path, dest: Path, copy: int) -> None:
    """Copy the corpus to `dest`; for `copy` > 0, every line of its text files outside code blocks with its sentences
    in an order drawn from the copy's number and the copy's number appended (` ·7`), so no chunk text repeats.

    Identical copies would flatter the stages that meet a text again: the fake upstream's vector cache, and
    PostgreSQL's HNSW build, which keeps identical vectors as one graph element. Distinct copies cost what distinct
    documents of about the same size cost."""
    shutil.copytree(corpus, dest)
    if copy == 0:
        return
    for path in sorted(dest.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in _REWRITTEN_SUFFIXES:
            continue
        order = random.Random(f"{copy}:{path.relative_to(dest)}")
        lines, in_code = [], False
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.lstrip().startswith("```"):
                in_code = not in_code
            elif line.strip() and not in_code:
                sentences = _SENTENCE.findall(line)
                if len(sentences) > 1 and "".join(sentences) == line:
                    order.shuffle(sentences)
                    line = "".join(sentences)
                line = f"{line} ·{copy}"
            lines.append(line)
        path.chmod(0o644)  # copied with the corpus's own mode, which may be read-only
        path.write_text("\n".join(lines), encoding="utf-8")


def _wait(client: httpx.Client, job_id: str, timeout: float) -> tuple[dict[str, Any], float]:
    """The job's final record, and the seconds it spent building its search indexes (0 when it built none)."""
    deadline = time.monotonic() + timeout
    building_since: float | None = None
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in FINAL_STATES:
            return job, time.monotonic() - building_since if building_since is not None else 0.0
        if building_since is None and job["progress"]["stage"] == JobStage.BUILDING_SEARCH_INDEXES:
            building_since = time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"index job {job_id} did not finish in {timeout:.0f} s")


def run_seed(fake: ZhipuFakeServer, corpus: Path) -> SeedRun:
    """The seed's path: stock ZhipuAIEmbedding inside VectorStoreIndex.from_documents, in this process."""
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.embeddings.zhipuai import ZhipuAIEmbedding
    from zhipuai import ZhipuAI as ZhipuAIClient

    for noisy in ("httpx", "zhipuai"):  # one INFO line per request would bury the table
        logging.getLogger(noisy).setLevel(logging.WARNING)
    embed = ZhipuAIEmbedding(model="embedding-2", api_key=API_KEY)
    embed._client = ZhipuAIClient(api_key=API_KEY, base_url=fake.base_url, max_retries=0)
    fake.reset()
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(corpus), recursive=True).load_data()
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    seconds = time.perf_counter() - started
    return SeedRun(chunks=len(index.docstore.docs), seconds=seconds, requests=fake.counters()["embedding_requests"])


COLUMNS = (
    "path", "engine", "index processes", "state", "chunks", "wall s", "chunks/s", "vs seed", "requests",
    "texts/request", "index build s", "worker CPU ms/chunk", "fake CPU ms/chunk", "servers CPU ms/chunk",
    "peak RSS MiB",
)  # fmt: skip


def rows(runs: list[StackRun], seed: SeedRun | None) -> list[list[str]]:
    out = []
    for r in runs:
        ratio = f"{r.rate / seed.rate:.2f}x" if seed and seed.rate else "-"
        per_request = f"{r.texts / r.requests:.1f}" if r.requests else "-"
        chunks = max(r.chunks, 1)
        per_chunk = [f"{1000 * cpu / chunks:.2f}" for cpu in (r.cpu_s, r.fake_cpu_s, r.server_cpu_s)]
        out.append(
            ["stack", r.engine, str(r.workers), r.state, str(r.chunks), f"{r.seconds:.2f}", f"{r.rate:.1f}", ratio]
            + [str(r.requests), per_request, f"{r.build_seconds:.2f}", *per_chunk, f"{r.peak_kib / 1024:.0f}"]
        )
    if seed:
        out.append(
            ["seed (in-process)", "-", "-", "succeeded", str(seed.chunks), f"{seed.seconds:.2f}", f"{seed.rate:.1f}"]
            + ["1.00x", str(seed.requests), f"{seed.chunks / max(seed.requests, 1):.1f}", "-", "-", "-", "-", "-"]
        )
    return out


def results_table(runs: list[StackRun], seed: SeedRun | None) -> Table:
    table = Table(title="Index throughput (one index job, fake Zhipu)")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("path", "engine", "state") else "right")
    for row in rows(runs, seed):
        table.add_row(*row)
    return table


def revision() -> str:
    """The commit measured, marked when the work tree differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "workers", "shared"], cwd=ROOT, capture_output=True)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def markdown(
    command: str,
    corpus: Path,
    files: int,
    delay_ms: float,
    runs: list[StackRun],
    seed: SeedRun | None,
    copies: int = 1,
    layout: str = "prefork",
    distinct: bool = True,
) -> str:
    copies_note = f"{copies} copies of the corpus ({copies * files} files)" if copies > 1 else "the corpus"
    if copies > 1:
        copies_note += (
            ", each copy after the first with the sentences of each line reordered and the copy's number appended "
            "(no chunk text repeats)"
            if distinct
            else ", identical"
        )
    processes = (
        "one prefork index worker with N children (`-c N`, the layout of `make up`)"
        if layout == "prefork"
        else "N index workers of one prefork child each"
    )
    lines = [
        SECTION,
        "",
        f"Command: `{command}` — run on {date.today().isoformat()} at revision {revision()}, {machine()}.",
        "",
        f"Corpus: `{_shown(corpus)}` ({files} files). The fake Zhipu server (`harness/fakes/zhipu_server.py`, a "
        f"thread of the bench process) waits {delay_ms:g} ms per `/embeddings` request. Each stack run starts the "
        f"API, {processes} and one threaded query worker on a private Redis DB (and, for PostgreSQL, a fresh "
        f"database in a private pgserver), submits one index job over {copies_note} and polls "
        "`GET /v1/jobs/{id}`: chunks/s is `result.chunks` / wall time from submit to the final state. Worker CPU is "
        "the index processes' user + system time during the job; fake CPU is the bench process's own (the fake "
        "server computing and serialising vectors, and the polling), which shares the same cores; servers CPU is the "
        "API's, the query worker's, Redis's and PostgreSQL's (every server process), on the same cores. Index build "
        "s is how long of the wall time the job's stage was `building_search_indexes` (a PostgreSQL first load). "
        "Peak RSS is the largest VmHWM among the index processes. The seed row is `VectorStoreIndex.from_documents("
        "SimpleDirectoryReader(corpus, recursive=True).load_data(), embed_model=ZhipuAIEmbedding(...))` in one "
        "process (its own splitter settings, so its chunk count differs).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in ("path", "engine", "state") else "---:" for c in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(runs, seed)]
    if runs and all(r.requests and r.texts == r.requests for r in runs):
        lines += ["", "The stack sent one text per request: it ran the stock one-call-per-chunk embedding."]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT.parent))
    except ValueError:
        return str(path)


def write_section(path: Path, section: str) -> None:
    """Replace this script's section of `path` (or append it), leaving every other section alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\nHow each figure was produced, next to the figure.\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.write_text(text)


@app.command()
def main(
    corpus: Annotated[Path, typer.Option(help="Folder to index, e.g. the study-notes corpus.")] = ROOT / "docs" / "kb",
    workers: Annotated[
        list[int] | None, typer.Option("--workers", "-w", help="Index process counts to run. Default: 1, 2, 4.")
    ] = None,
    engines: Annotated[str, typer.Option(help="Stores to index into, comma-separated: sqlite, postgresql.")] = "sqlite",
    layout: Annotated[
        str, typer.Option(help="prefork: one index worker with -c N (make up); workers: N workers of -c 1.")
    ] = "prefork",
    embedding_delay_ms: Annotated[float, typer.Option(help="Fake Zhipu latency per /embeddings request.")] = 50,
    quick: Annotated[bool, typer.Option(help="Smaller run: 1 and 2 processes, no seed, no docs update.")] = False,
    copies: Annotated[
        int,
        typer.Option(
            help="Index this many copies of the corpus in the stack runs, so a job has several batches "
            "for several processes to share; the seed path indexes one copy (rates are per chunk)."
        ),
    ] = 4,
    distinct: Annotated[
        bool,
        typer.Option(
            "--distinct/--identical",
            help="Copies after the first reorder the sentences of each line and append the copy's number to it, so "
            "no chunk text repeats (a repeated text is cheaper for the fake's cache and PostgreSQL's HNSW build); "
            "--identical copies the files as they are.",
        ),
    ] = True,
    seed: Annotated[bool, typer.Option(help="Also time the seed's in-process path.")] = True,
    env: Annotated[
        list[str] | None, typer.Option(help="Extra KEY=VALUE for the stack, e.g. EMBED_BATCH_SIZE=64.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up on an index job after this many seconds.")] = 1800,
    docs: Annotated[Path, typer.Option(help="Markdown file whose section gets the results.")] = ROOT
    / "docs"
    / "benchmarks.md",
    write_docs: Annotated[
        bool | None, typer.Option(help="Write the results to --docs. Default: unless --quick.")
    ] = None,
) -> None:
    """Index a corpus through the stack with 1, 2 and 4 index processes, per store, and through the seed's path.

    Starts a private redis-server, the fake Zhipu server (latency --embedding-delay-ms per /embeddings request) and,
    for PostgreSQL, a private pgserver; then for each store and process count a fresh stack (API, the index
    processes, a threaded query worker; its own Redis DB, temp DATA_DIR and database), submits one index job for
    the corpus copies and reports chunks/s, upstream requests, CPU per chunk and peak worker RSS; last, the seed's
    in-process VectorStoreIndex.from_documents with the stock ZhipuAIEmbedding. Results go to their section of
    --docs.

    Example: .venv/bin/python -m bench.index_throughput --corpus /work/shared/corpus --engines sqlite,postgresql
    """
    console.print(f"machine: {machine()}")
    corpus = corpus.resolve()
    counts = workers or ([1, 2] if quick else [1, 2, 4])
    chosen = [e.strip() for e in engines.split(",") if e.strip()]
    if not chosen or set(chosen) - set(ENGINES):
        raise typer.BadParameter(f"--engines must name some of {', '.join(ENGINES)}, not {engines!r}")
    if layout not in LAYOUTS:
        raise typer.BadParameter(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    seed = seed and not quick
    extra = dict(item.split("=", 1) for item in env or [])
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    kind = "distinct" if distinct else "identical"
    console.print(f"corpus {corpus} ({files} files) x{copies} ({kind}), engines {chosen}, processes {counts}, {layout}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-index-"))
    runs: list[StackRun] = []
    seed_run: SeedRun | None = None
    redis_server = RedisServer.start(tmp)
    try:
        with ExitStack() as resources:
            fake = resources.enter_context(ZhipuFakeServer(embedding_delay_ms=embedding_delay_ms))
            pg = PostgresServer.start(tmp / "pg") if "postgresql" in chosen else None
            if pg is not None:
                resources.callback(pg.stop)
            servers = tuple(
                pid
                for pid in (redis_server.process.pid if redis_server.process else None, pg.pid if pg else None)
                if pid
            )
            for engine in chosen:
                for n in counts:
                    console.print(f"[bold]stack[/] {engine}, {n} index process(es)…")
                    url = redis_server.url(redis_server.claim_db(f"bench-index-{engine}-{n}"))
                    run_env = dict(extra)
                    if engine == "postgresql":
                        assert pg is not None  # started above when the engines include it
                        run_env["VECTOR_STORE_URL"] = pg.fresh_database(f"bench_index_{n}")
                    runs.append(
                        run_stack(
                            n, fake, url, corpus, tmp, run_env, timeout, copies, engine, layout, distinct, servers
                        )
                    )
                    r = runs[-1]
                    console.print(f"  {r.state}: {r.chunks} chunks in {r.seconds:.2f} s ({r.rate:.0f}/s) {r.error}")
            if seed:
                console.print("[bold]seed[/] path in-process…")
                seed_run = run_seed(fake, corpus)
    except Exception:
        console.print(f"[red]failed[/]; stack logs are kept in {tmp}")
        raise
    finally:
        redis_server.stop()
    console.print(results_table(runs, seed_run))
    shutil.rmtree(tmp, ignore_errors=True)

    if write_docs if write_docs is not None else not quick:
        command = " ".join([".venv/bin/python -m bench.index_throughput", *sys.argv[1:]])
        write_section(
            docs, markdown(command, corpus, files, embedding_delay_ms, runs, seed_run, copies, layout, distinct)
        )
        console.print(f"results written to {docs}")


if __name__ == "__main__":
    app()
