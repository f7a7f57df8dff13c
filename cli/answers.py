"""Streaming answers into the terminal: `ragq ask` (a query job's SSE) and `ragq chat` (a conversation)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from rich.console import Console

from cli.client import ApiClient, CliError

EXIT_INTERRUPTED = 130


@dataclass
class Answer:
    job_id: str | None
    text: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def cancel(client: ApiClient, job_id: str | None, err: Console) -> None:
    """Ctrl-C: cancel the job on the server too, so the LLM stops generating for nobody."""
    if not job_id:
        return
    try:
        client.delete(f"/v1/queries/{job_id}")
        err.print(f"cancelled query {job_id} on the server", highlight=False)
    except CliError as exc:
        err.print(f"could not cancel query {job_id}: {exc.message}", highlight=False)


def _write(out: Console, text: str) -> None:
    out.file.write(text)
    out.file.flush()


def document_name(source: str) -> str:
    """An upload's name as sent ('kb/a.md'); a server-side absolute path shortened to its file name."""
    return PurePosixPath(source).name if source.startswith("/") else source


def print_sources(out: Console, sources: list[dict[str, Any]]) -> None:
    if not sources:
        return
    out.print("[bold]Sources[/bold]")
    for s in sources:
        where = f" · {s['location']}" if s.get("location") else ""
        out.print(f"  [{s['index']}] {document_name(s['document'])}{where}  [dim](score {s['score']})[/dim]")


def ask(client: ApiClient, body: dict[str, Any], as_json: bool, out: Console, err: Console) -> Answer:
    """Stream one answer (tokens written the moment they arrive unless `as_json`); Ctrl-C cancels it."""
    accepted = client.post("/v1/queries", json=body)
    answer = Answer(job_id=accepted["job_id"])
    try:
        for event, data in client.events(accepted["stream_url"]):
            if event == "sources":
                answer.sources = data
            elif event == "token":
                answer.text.append(data["text"])
                if not as_json:
                    _write(out, data["text"])
            elif event == "done":
                answer.done = data
                break
            elif event == "error":
                answer.error = data
                break
    except KeyboardInterrupt:
        if not as_json:
            _write(out, "\n")
        cancel(client, answer.job_id, err)
        raise CliError("interrupted", EXIT_INTERRUPTED) from None
    if as_json:
        out.print_json(json.dumps(_as_json(answer, body), ensure_ascii=False))
    else:
        _write(out, "\n")
        if answer.done:
            first = (answer.done.get("timings_ms") or {}).get("first_token")
            by = answer.done.get("answerer")
            err.print(f"[dim]{answer.done.get('tokens')} pieces, first after {first} ms, by {by}[/dim]")
        print_sources(out, answer.sources)
    if answer.error:
        raise CliError(f"the answer failed: {answer.error['message']} ({answer.error['code']})")
    if answer.done is None:
        raise CliError("the answer stream ended without a done or error event")
    return answer


def _as_json(answer: Answer, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": answer.job_id,
        "collection": body["collection"],
        "question": body["question"],
        "answer": "".join(answer.text),
        "sources": answer.sources,
        "done": answer.done,
        "error": answer.error,
    }


def chat_turn(client: ApiClient, body: dict[str, Any], out: Console, err: Console) -> Answer | None:
    """One streamed reply through the OpenAI-compatible route (it takes the earlier turns); None if stopped."""
    answer = Answer(job_id=None)
    try:
        for headers, chunk in client.data_stream("/v1/chat/completions", body):
            answer.job_id = headers.get("x-job-id")
            if "error" in chunk:
                answer.error = chunk["error"]
                break
            if chunk.get("sources") is not None:
                answer.sources = chunk["sources"]
            for choice in chunk.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    answer.text.append(piece)
                    _write(out, piece)
                if choice.get("finish_reason"):
                    answer.done = {"finish_reason": choice["finish_reason"]}
    except KeyboardInterrupt:
        _write(out, "\n")
        cancel(client, answer.job_id, err)
        return None
    _write(out, "\n")
    if answer.error:
        err.print(f"[red]error:[/red] {answer.error.get('message')} ({answer.error.get('code')})", highlight=False)
        return None
    print_sources(out, answer.sources)
    return answer


# The turns sent with each question: the latest ones, well within the server's MAX_HISTORY_TURNS (20) and
# MAX_HISTORY_CHARS (20,000), so a long conversation never gets 422 history_too_long.
HISTORY_MESSAGES = 10
HISTORY_CHARS = 8000


def _recent(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The last HISTORY_MESSAGES messages, dropping the oldest question-and-answer pairs past HISTORY_CHARS."""
    kept = history[-HISTORY_MESSAGES:]
    while kept and sum(len(m["content"]) for m in kept) > HISTORY_CHARS:
        kept = kept[2:]
    return kept


def chat(client: ApiClient, collection: str, extra: dict[str, Any], out: Console, err: Console) -> None:
    """Read questions until EOF or /exit, sending the conversation so far with each one."""
    client.get(f"/v1/collections/{collection}")  # a missing collection fails now, not after the first question
    err.print(f"Chatting with '{collection}'. /reset forgets the conversation, /exit (or Ctrl-D) leaves.")
    history: list[dict[str, str]] = []
    while True:
        try:
            question = out.input("[bold cyan]you ›[/bold cyan] ").strip()
        except (EOFError, KeyboardInterrupt):
            _write(out, "\n")
            return
        if question in ("/exit", "/quit"):
            return
        if question == "/reset":
            history.clear()
            err.print("[dim]conversation forgotten[/dim]")
            continue
        if not question:
            continue
        messages = [*history, {"role": "user", "content": question}]
        try:
            reply = chat_turn(client, {"model": collection, "messages": messages, "stream": True, **extra}, out, err)
        except CliError as exc:  # say what went wrong and keep the conversation going
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            continue
        if reply is not None:
            history = _recent([*messages, {"role": "assistant", "content": "".join(reply.text)}])
