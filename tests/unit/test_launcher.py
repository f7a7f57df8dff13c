"""The tests' launcher (harness/launcher.py) starts a console script as its own process with the argv, environment,
working directory and log it was given, reports its exit status as Popen would, and has imported none of our own
modules before the fork (they read settings at import)."""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from harness.processes import ROOT, Launcher, Stack, is_console_script, run_program

PROGRAM = f"""#!{sys.executable}
import json, os, sys
own = sorted(m for m in sys.modules if m.split(".")[0] in ("api", "workers", "shared", "cli"))
print(json.dumps({{"argv": sys.argv, "cwd": os.getcwd(), "env": os.environ.get("PROBE"), "own": own,
                   "celery": "celery.bin.celery" in sys.modules, "pid": os.getpid()}}), flush=True)
if sys.argv[1] == "wait":
    sys.stdin.read()  # /dev/null: returns at once
    import time
    time.sleep(60)
sys.exit(int(sys.argv[1]) if sys.argv[1].isdigit() else 0)
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    script = tmp_path / "probe"
    script.write_text(PROGRAM)
    script.chmod(0o755)
    return script


def test_a_program_runs_with_its_own_argv_environment_folder_and_log(program: Path, tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    launched = Launcher.get().launch([str(program), "3", "--flag"], {"PROBE": "given"}, log)
    assert launched.wait(30) == 3
    seen = json.loads(log.read_text())
    assert seen["argv"] == [str(program), "3", "--flag"] and seen["cwd"] == str(ROOT) and seen["env"] == "given"
    assert seen["pid"] == launched.pid
    assert seen["own"] == []  # none of ours preloaded: they are imported after the environment is in place
    assert seen["celery"]  # the libraries are


def test_a_killed_program_reports_the_signal_like_popen(program: Path, tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    launched = Launcher.get().launch([str(program), "wait"], {}, log)
    assert launched.poll() is None
    launched.kill()
    assert launched.wait(30) == -signal.SIGKILL
    assert launched.poll() == launched.returncode == -signal.SIGKILL


def test_an_exit_that_arrives_with_the_pid_is_not_lost(tmp_path: Path) -> None:
    """A program that ends at once: its `exit` line may come in the same read as its `pid` line."""
    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.makefile("rb").readline()
        conn.sendall(b"pid 4242\nexit 3\n")
        conn.close()

    server = threading.Thread(target=answer)
    server.start()
    launched = Launcher(path).launch(["/bin/true"], {}, tmp_path / "log")
    server.join(5)
    listener.close()
    assert (launched.pid, launched.wait(5)) == (4242, 3)


def test_a_command_run_through_the_launcher_gives_its_stdout_and_stderr_apart(tmp_path: Path) -> None:
    script = tmp_path / "two-streams"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nprint('为 stdout')\nprint('for stderr', file=sys.stderr)\nsys.exit(2)\n"
    )
    script.chmod(0o755)
    assert Stack.use_launcher and is_console_script(str(script))  # so run_program forks it from the launcher
    done = run_program([str(script)], {})
    assert (done.returncode, done.stdout, done.stderr) == (2, "为 stdout\n", "for stderr\n")


def test_a_connection_that_sends_no_request_does_not_end_the_launcher(program: Path, tmp_path: Path) -> None:
    launcher = Launcher.get()
    launcher._connect().close()  # connected, then gone without a word
    launched = launcher.launch([str(program), "0"], {}, tmp_path / "probe.log")
    assert launched.wait(30) == 0
