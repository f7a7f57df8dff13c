"""`ragq chat` reading its questions from a pipe: each gets its answer and sources, and EOF ends it with exit 0.

The chat loop (cli/answers.py) prompts with `you › ` on stdout and reads a line; a script or `printf … | ragq chat`
has no terminal, so questions come one line each and EOF (Ctrl-D's meaning) ends the conversation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import Stack
from tests.conftest import client_for
from tests.support.jobs import index_and_wait

pytestmark = pytest.mark.e2e

RAGQ = Path(sys.executable).parent / "ragq"
COLLECTION = "cli-chat"
PROMPT = "you › "
NOTES = {
    "推理.md": "# KV 缓存\n\nKV 缓存保存已经算过的键和值，解码时不必重复计算，从而加速推理。\n",
    "队列.md": "# Celery\n\nCelery 由生产者、消息代理和 worker 三部分组成，任务经由代理交给 worker 执行。\n",
}
# Each question, the note that answers it, and a term its answer must hold.
QUESTIONS = [("什么是 KV 缓存？", "推理.md", "KV 缓存"), ("Celery 由哪几部分组成？", "队列.md", "Celery")]


@pytest.fixture(scope="module")
def collection(offline_stack: Stack) -> str:
    """Two short notes of its own (the local embedding model is slow on the whole sample knowledge base)."""
    folder = offline_stack.import_dir / COLLECTION
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with client_for(offline_stack) as client:
        assert index_and_wait(client, COLLECTION, [COLLECTION])["state"] == "succeeded"
    return COLLECTION


def _chat(api: str, collection: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAGQ_API": api, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("RAGQ_API_KEY", None)
    return subprocess.run(
        [str(RAGQ), "chat", "-c", collection], input=stdin, capture_output=True, text=True, env=env, timeout=120
    )


def test_piped_questions_each_get_an_answer_and_sources_and_eof_exits_0(offline_stack: Stack, collection: str) -> None:
    result = _chat(offline_stack.base_url, collection, "".join(f"{q}\n" for q, _, _ in QUESTIONS))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"Chatting with '{collection}'" in result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    # One prompt per question, and a last one that met EOF.
    before, *replies, at_eof = result.stdout.split(PROMPT)
    assert before == "" and at_eof.strip() == "", result.stdout
    assert len(replies) == len(QUESTIONS), result.stdout
    for reply, (question, document, term) in zip(replies, QUESTIONS, strict=True):
        answer, sources_heading, sources = reply.partition("Sources\n")
        assert sources_heading, f"no sources after the answer to {question!r}: {reply!r}"
        assert term in answer, (question, answer)
        listed = [line.split()[1] for line in sources.splitlines() if line.strip().startswith("[")]
        assert listed and all(name.startswith(f"{COLLECTION}/") for name in listed), sources
        assert listed[0].endswith(document), (question, listed)
