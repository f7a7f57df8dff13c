"""Print the supervisord configuration `make up` runs the stack with (scripts/stack.sh writes it into the run folder).

    PYTHONPATH=. .venv/bin/python scripts/supervisor_conf.py --run-dir .run [--api-port 8000] [--flower-port 5555] ...

Every program restarts when it dies (`autorestart`), logs into <run-dir>/<program>.log, and stops with
SIGTERM, which is a warm shutdown for Celery (running tasks finish) and a graceful one for uvicorn. The
programs inherit supervisord's environment, which is stack.sh's: REDIS_URL, VECTOR_STORE_URL, FLOWER_BASIC_AUTH.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CELERY = [str(BIN / "celery"), "-A", "workers.celery_app:app"]
# Beat and Flower run no task: the app without the task modules starts them with less than half the CPU and memory.
TASKLESS = [str(BIN / "celery"), "-A", "workers.taskless_app:app"]
# A program that dies sooner than --startsecs after its start counts as a failed start, and after STARTRETRIES of
# those in a row supervisord gives up on it (FATAL) instead of restarting a broken configuration forever. A process
# that cannot start (a store that does not answer: exit 3) takes several seconds to import and fail on a
# busy machine, hence Celery's own example value as the default. Until then `make status` shows STARTING.
STARTSECS = 10
STARTRETRIES = 3
LOG_MAXBYTES = "50MB"
LOG_BACKUPS = 5


@dataclass(frozen=True)
class Program:
    """One [program:x] section."""

    name: str
    command: list[str]
    priority: int  # started in ascending order, stopped in descending order
    stopwaitsecs: int


def quote(value: object) -> str:
    """A value for supervisord's config: `%` is its interpolation character (celery's `-n name@%h` needs `%%h`)."""
    return str(value).replace("%", "%%")


def section(program: Program, run_dir: Path, startsecs: int) -> str:
    lines = [
        f"[program:{program.name}]",
        f"command={quote(shlex.join(program.command))}",
        f"directory={quote(ROOT)}",
        f"priority={program.priority}",
        "autostart=true",
        "autorestart=true",
        f"startsecs={startsecs}",
        f"startretries={STARTRETRIES}",
        "stopsignal=TERM",
        f"stopwaitsecs={program.stopwaitsecs}",
        # TERM goes to the program's main process only: Celery's prefork children reset SIGTERM to its default
        # (celery/concurrency/prefork.py, WORKER_SIGRESET), so a TERM to the group would kill running tasks
        # instead of letting the main process wait for them; uvicorn's main process stops its own workers.
        "stopasgroup=false",
        # Past stopwaitsecs, SIGKILL reaches the whole group, so no pool child or uvicorn worker is left behind.
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={quote(run_dir / f'{program.name}.log')}",
        f"stdout_logfile_maxbytes={LOG_MAXBYTES}",
        f"stdout_logfile_backups={LOG_BACKUPS}",
    ]
    return "\n".join(lines) + "\n"


def programs(args: argparse.Namespace, settings: Settings) -> list[Program]:
    """The stack: index worker, query workers, beat, Flower, API; workers first up and last down."""
    # Celery's warm shutdown waits for running tasks, and a task is killed by Celery at TASK_TIME_LIMIT_S: wait
    # that long before supervisord's SIGKILL, or a stop would cut an index batch or an answer short.
    task_wait = settings.TASK_TIME_LIMIT_S + 30
    # Every worker also consumes `maintenance` (the reaper), so it runs while any worker lives.
    stack = [
        Program(
            "worker-index",
            [*CELERY, "worker", "-Q", "index,maintenance", "-P", "prefork", "-c", str(args.index_concurrency)]
            + ["-n", "index@%h", "--loglevel=INFO"],
            100,
            task_wait,
        )
    ]
    for i in range(1, args.query_workers + 1):  # one process per core scales past one process's GIL
        command = [*CELERY, "worker", "-Q", "query,maintenance", "-P", "threads", "-c", str(args.query_concurrency)]
        stack.append(Program(f"worker-query-{i}", [*command, "-n", f"query-{i}@%h", "--loglevel=INFO"], 100, task_wait))
    # Sends the reaper every REAPER_INTERVAL_S; several beats are safe (the reaper holds a Redis lock).
    beat = [*TASKLESS, "beat", "-s", str(args.run_dir / "celerybeat-schedule"), "--loglevel=INFO"]
    stack.append(Program("beat", beat, 200, 10))
    # Basic auth comes from FLOWER_BASIC_AUTH in the environment, never --basic-auth, so the password never
    # shows in `ps`.
    flower = [*TASKLESS, "flower", f"--port={args.flower_port}", "--address=127.0.0.1"]
    stack.append(Program("flower", flower, 200, 10))
    # Idle keep-alive connections outlive the clients' and proxies' own idle timeouts (docs/operations.md).
    # API_WORKERS uvicorn processes share the port and nothing else but Redis, so a stream begun on one resumes
    # on another with Last-Event-ID. Stopped first: no new job is accepted while the workers drain.
    api = [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(args.api_port)]
    api += ["--timeout-keep-alive", str(settings.API_KEEPALIVE_S), "--workers", str(args.api_workers)]
    stack.append(Program("api", api, 300, 30))
    return stack


def render(args: argparse.Namespace, settings: Settings) -> str:
    run_dir: Path = args.run_dir
    head = f"""; Written by scripts/supervisor_conf.py whenever `make up` starts supervisord.
[unix_http_server]
file={quote(run_dir / "supervisor.sock")}
chmod=0700

[supervisord]
logfile={quote(run_dir / "supervisord.log")}
logfile_maxbytes={LOG_MAXBYTES}
logfile_backups={LOG_BACKUPS}
loglevel=info
pidfile={quote(run_dir / "supervisord.pid")}
childlogdir={quote(run_dir)}
directory={quote(ROOT)}
identifier=ragqueue

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{quote(run_dir / "supervisor.sock")}
"""
    return head + "".join("\n" + section(p, run_dir, args.startsecs) for p in programs(args, settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=lambda s: Path(s).resolve(), required=True)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--flower-port", type=int, default=5555)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--index-concurrency", type=int, default=1)
    parser.add_argument("--query-workers", type=int, default=1)
    parser.add_argument("--query-concurrency", type=int, default=32)
    parser.add_argument("--startsecs", type=int, default=STARTSECS, help="seconds up before a start counts")
    print(render(parser.parse_args(), Settings()), end="")


if __name__ == "__main__":
    main()
