"""Print each program `make up` runs under supervisord: state, pid, uptime, restarts and its last exit.

    .venv/bin/python scripts/stack_status.py --run-dir .run

supervisord's XML-RPC interface gives each program's state, pid and start time but keeps no restart count, so
restarts are counted from supervisord's own log (<run-dir>/supervisord.log and its rotated files): it logs
every start of a program as "spawned: '<name>' with pid N", and each start after a program's first since
supervisord itself started is a restart (after a crash, or by `supervisorctl restart`). Exits 1 unless every
program is RUNNING.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xmlrpc.client import ServerProxy

from supervisor.xmlrpc import SupervisorTransport

STARTED = re.compile(r"supervisord started with pid \d+")
SPAWNED = re.compile(r"spawned: '(?P<name>[^']+)' with pid (?P<pid>\d+)")
EXITED = re.compile(r"exited: (?P<name>\S+) \((?P<why>.*)\)\s*$")


@dataclass
class History:
    """One program's starts and last unrequested exit since supervisord started, from its log."""

    pids: list[int] = field(default_factory=list)
    last_exit: str = ""

    @property
    def restarts(self) -> int:
        return max(0, len(self.pids) - 1)


def main_log(run_dir: Path) -> str:
    """supervisord's log since it last started, across rotation (supervisord.log.N is older than .1)."""
    current = run_dir / "supervisord.log"
    rotated = sorted(run_dir.glob("supervisord.log.*"), key=lambda p: int(p.suffix[1:]), reverse=True)
    text = "".join(p.read_text(errors="replace") for p in [*rotated, current] if p.exists())
    starts = list(STARTED.finditer(text))
    return text[starts[-1].end() :] if starts else text


def histories(log: str) -> dict[str, History]:
    found: dict[str, History] = {}
    for line in log.splitlines():
        if spawned := SPAWNED.search(line):
            found.setdefault(spawned["name"], History()).pids.append(int(spawned["pid"]))
        elif exited := EXITED.search(line):
            found.setdefault(exited["name"], History()).last_exit = exited["why"]
    return found


def uptime(info: dict[str, Any]) -> str:
    if info["statename"] != "RUNNING":
        return "-"
    seconds = int(info["now"] - info["start"])
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds // 86400}d"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=lambda s: Path(s).resolve(), required=True)
    run_dir: Path = parser.parse_args().run_dir
    transport = SupervisorTransport(None, None, f"unix://{run_dir / 'supervisor.sock'}")
    rpc: Any = ServerProxy("http://127.0.0.1", transport=transport)  # XML-RPC: answers are untyped
    try:
        supervisord_pid: int = rpc.supervisor.getPID()
        infos: list[dict[str, Any]] = rpc.supervisor.getAllProcessInfo()
    except OSError:  # socket.error: no socket file, or nobody listening on it
        print(f"supervisord: not running (no answer on {run_dir / 'supervisor.sock'}; start it with make up)")
        return 1
    found = histories(main_log(run_dir))
    print(f"supervisord: running (pid {supervisord_pid}, log {run_dir / 'supervisord.log'})")
    rows = [("program", "state", "pid", "uptime", "restarts", "last exit")]
    for info in infos:
        history = found.get(info["name"], History())
        pid = str(info["pid"]) if info["pid"] else "-"
        rows.append((info["name"], info["statename"], pid, uptime(info), str(history.restarts), history.last_exit))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0 if all(info["statename"] == "RUNNING" for info in infos) else 1


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    sys.exit(main())
