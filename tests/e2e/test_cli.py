"""`ragq`, the installed command, run as a subprocess against the real stack over HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from harness import local_http
from harness.fakes.zhipu_server import ZhipuFakeServer
from harness.processes import Stack, free_port, run_program
from tests.conftest import SAMPLE_DOCS, client_for, copy_sample_docs
from tests.support.jobs import index_and_wait, wait_for_job

pytestmark = pytest.mark.e2e

RAGQ = Path(sys.executable).parent / "ragq"
COLLECTION = "cli"
# Three short notes, not the sample docs: every chunk costs the local embedding model about 0.4 s of CPU, and what is
# under test here is the command, not the model.
NOTES = {
    "KV缓存.md": "# KV 缓存\n\nKV 缓存保存注意力层已经算过的键和值，生成下一个词时不必重新计算。\n",
    "任务队列.md": "# 任务队列\n\nCelery 把任务放进 Redis 队列，由工作进程取出执行。\n",
    "检索.txt": "检索增强生成先从知识库找出相关段落，再让模型据此回答。\n",
}
SAMPLE_COUNT = len(NOTES)
COMMANDS = ["index", "ask", "chat", "jobs", "job", "collections", "status", "eval"]


def ragq(api: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAGQ_API": api, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("RAGQ_API_KEY", None)
    return run_program([str(RAGQ), *args], env, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ragq: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small knowledge base, plus files the type filter must leave out."""
    root = tmp_path_factory.mktemp("cli") / "kb"
    root.mkdir()
    for name, text in NOTES.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "archive.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("不应被索引", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def indexed(offline_stack: Stack, folder: Path) -> subprocess.CompletedProcess[str]:
    return ragq(offline_stack.base_url, "index", str(folder), "--collection", COLLECTION)


def test_every_command_has_help_with_examples() -> None:
    listed = ragq("http://127.0.0.1:9", "--help")
    assert listed.returncode == 0, listed.stderr
    assert "Examples" in listed.stdout
    assert [c for c in COMMANDS if not re.search(rf"^\W*{c}\b", listed.stdout, re.MULTILINE)] == []
    # Each command's own help in this process: the same typer app the command runs, without a Python start-up each.
    runner = CliRunner()
    for command in COMMANDS:
        result = runner.invoke(cli_app, [command, "--help"], env={"NO_COLOR": "1", "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "Examples" in result.output, command


def test_index_uploads_a_folder_shows_progress_then_a_summary(
    offline_stack: Stack, indexed: subprocess.CompletedProcess[str]
) -> None:
    assert indexed.returncode == 0, indexed.stderr
    progress = [line for line in indexed.stderr.splitlines() if line.startswith("indexing: ")]
    assert progress, indexed.stderr
    done = [int(m.group(1)) for line in progress if (m := re.search(r"(\d+)/\d+ documents", line))]
    assert done == sorted(done) and done[-1] == SAMPLE_COUNT
    assert f"{SAMPLE_COUNT}/{SAMPLE_COUNT} documents" in progress[-1]
    assert f"{SAMPLE_COUNT} documents indexed, 0 unchanged, 0 failed" in indexed.stdout
    # one line per file with its outcome (a folder of at most 50 files)
    lines = indexed.stdout.splitlines()
    for name in NOTES:
        assert [line for line in lines if f"kb/{name}" in line and "indexed" in line], indexed.stdout

    with client_for(offline_stack) as client:
        names = {d["source"] for d in client.get(f"/v1/collections/{COLLECTION}/documents").json()["documents"]}
    # named relative to the folder given; the .zip and the hidden folder were left out
    assert names == {f"kb/{name}" for name in NOTES}


def test_indexing_the_same_folder_again_reports_it_unchanged(
    offline_stack: Stack, folder: Path, indexed: subprocess.CompletedProcess[str]
) -> None:
    again = ragq(offline_stack.base_url, "index", str(folder), "-c", COLLECTION)
    assert again.returncode == 0, again.stderr
    assert f"0 documents indexed, {SAMPLE_COUNT} unchanged" in again.stdout


def test_index_no_wait_prints_the_job_id(offline_stack: Stack, tmp_path: Path) -> None:
    # A short note: the local embedding model takes seconds of CPU per sample document, in the background here.
    note = tmp_path / "note.md"
    note.write_text("# 不等待\n\n--no-wait 只打印任务编号。\n", encoding="utf-8")
    result = ragq(offline_stack.base_url, "index", str(note), "-c", "cli-nowait", "--no-wait")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    with client_for(offline_stack) as client:
        job, _ = wait_for_job(client, job_id)
    assert job["state"] == "succeeded" and job["collection"] == "cli-nowait"


def test_ask_json_gives_the_answer_and_its_sources(
    offline_stack: Stack, indexed: subprocess.CompletedProcess[str]
) -> None:
    result = ragq(offline_stack.base_url, "ask", "什么是 KV 缓存？", "--collection", COLLECTION, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["answer"].strip() and answer["error"] is None
    assert answer["done"]["tokens"] >= 1
    assert answer["sources"] and all(s["document"].startswith("kb/") for s in answer["sources"])
    with client_for(offline_stack) as client:
        assert client.get(f"/v1/jobs/{answer['job_id']}").json()["state"] == "succeeded"


def test_ask_streams_text_then_lists_sources(offline_stack: Stack, indexed: subprocess.CompletedProcess[str]) -> None:
    result = ragq(offline_stack.base_url, "ask", "什么是 KV 缓存？", "-c", COLLECTION)
    assert result.returncode == 0, result.stderr
    answer, _, sources = result.stdout.partition("Sources")
    assert answer.strip()
    assert re.search(r"\[1\] \S+\.(md|txt)", sources), result.stdout


def test_jobs_job_and_collections_show_what_ran(
    offline_stack: Stack, indexed: subprocess.CompletedProcess[str]
) -> None:
    listed = ragq(offline_stack.base_url, "jobs", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    index_job = next(j for j in jobs if j["kind"] == "index" and j["collection"] == COLLECTION)
    assert [j["created_at"] for j in jobs] == sorted((j["created_at"] for j in jobs), reverse=True)

    shown = ragq(offline_stack.base_url, "job", index_job["id"])
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout and "documents indexed" in shown.stdout

    table = ragq(offline_stack.base_url, "collections")
    assert table.returncode == 0 and COLLECTION in table.stdout


def test_status_shows_the_workers_of_both_queues(offline_stack: Stack) -> None:
    result = ragq(offline_stack.base_url, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["ready"] is True
    queues = {q["name"]: q for q in status["queues"]}
    assert [w.split("@")[0] for w in queues["index"]["workers"]] == ["offline-index"]
    assert [w.split("@")[0] for w in queues["query"]["workers"]] == ["offline-query"]
    assert queues["index"]["waiting"] == 0 and queues["query"]["waiting"] == 0

    text = ragq(offline_stack.base_url, "status")
    assert text.returncode == 0 and "ready" in text.stdout and "offline-query@" in text.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (["ask", "q", "-c", "Bad Name!"], "invalid_request"),
        (["index", str(SAMPLE_DOCS), "-c", "Bad Name!"], "invalid_request"),
        (["ask", "q", "-c", "no-such-collection"], "collection_not_found"),
        (["job", "0123456789abcdef"], "job_not_found"),
        (["index", "/no/such/folder", "-c", COLLECTION], "no such file or folder"),
    ],
)
def test_a_bad_request_is_one_line_on_stderr_and_a_failure_exit(
    offline_stack: Stack, args: list[str], says: str
) -> None:
    result = ragq(offline_stack.base_url, *args)
    assert says in one_line_error(result)
    assert result.stdout == ""


def test_an_unreachable_api_is_one_line_and_a_failure_exit() -> None:
    api = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["ask", "q", "-c", COLLECTION], ["index", str(SAMPLE_DOCS), "-c", COLLECTION]):
        line = one_line_error(ragq(api, *args))
        assert f"cannot reach the ragqueue API at {api}" in line


@pytest.fixture(scope="module")
def slow_collection(zhipu_stack: Stack) -> Iterator[str]:
    copy_sample_docs(zhipu_stack, "cli-slow")
    with client_for(zhipu_stack) as client:
        assert index_and_wait(client, "cli-slow", ["cli-slow"])["state"] == "succeeded"
    yield "cli-slow"


def test_ctrl_c_during_ask_cancels_the_job_on_the_server(
    zhipu_stack: Stack, zhipu: ZhipuFakeServer, slow_collection: str
) -> None:
    # 30 s of answer if nothing cancels it: on a loaded machine a stalled relay can hand the client many tokens at
    # once, and a 6 s answer was once over before the test's Ctrl-C reached ragq.
    tokens = [f"词{i}" for i in range(300)]
    zhipu.configure(tokens=tokens, token_delay_ms=100)
    env = {**os.environ, "RAGQ_API": zhipu_stack.base_url, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [str(RAGQ), "ask", "什么是投机解码？", "-c", slow_collection],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    seen = b""
    while "词2".encode() not in seen:  # three tokens are on the terminal
        chunk = cast(io.BufferedReader, proc.stdout).read1(64)
        assert chunk, proc.stderr.read() if proc.stderr else b""
        seen += chunk
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    match = re.search(r"cancelled query ([0-9a-f]+) on the server", stderr.decode())
    assert match, stderr
    with local_http.client(base_url=zhipu_stack.base_url, timeout=10) as client:
        job, _ = wait_for_job(client, match.group(1))
    assert job["state"] == "cancelled"
