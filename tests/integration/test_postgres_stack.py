"""Nothing shared but Redis and PostgreSQL: API and workers each with an empty DATA_DIR of their own."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from harness.postgres import PostgresServer
from harness.processes import BIN, RedisServer, Stack, run_program
from harness.sse import iter_events
from shared import keys
from shared.jobs.records import FINAL_STATES, JobStage
from tests.conftest import client_for, stack_env
from tests.support.jobs import wait_for_job
from tests.support.teardown import stop_later

pytestmark = pytest.mark.integration

FILES = 24
PROCESSES = ("api", "index-1", "index-2", "query")


@pytest.fixture(scope="module")
def pg_stack(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("pgstack")
    env = stack_env(redis_server, "pgstack", root)
    env.update(VECTOR_STORE_URL=postgres_server.fresh_database("stack"), INDEX_BATCH_FILES="4")
    stack = Stack("pgstack", env, root)
    stack.env_for = {name: {"DATA_DIR": str(root / f"{name}-data")} for name in PROCESSES}
    workers = [("index-1", "index", "prefork", 1), ("index-2", "index", "prefork", 1), ("query", "query", "threads", 4)]
    stack.start(workers)
    yield stack
    stop_later("postgres stack", stack.stop)  # while the next module starts


def note(i: int) -> bytes:
    return f"# 实验记录 {i}\n\n编号 P{i:04d} 的实验在第 {i} 天测量了流水线并行的吞吐。\n".encode()


def search_index_methods(url: str, collection: str) -> list[str]:
    """The access methods of the collection's chunk table's valid indexes, other than the b-trees."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT am.amname FROM ragqueue.collections c JOIN pg_class t ON t.relname = 'chunks_' || c.id "
            "JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'ragqueue' "
            "JOIN pg_index i ON i.indrelid = t.oid AND i.indisvalid JOIN pg_class x ON x.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = x.relam WHERE c.name = %s AND am.amname <> 'btree' ORDER BY am.amname",
            (collection,),
        ).fetchall()
    return [r[0] for r in rows]


def test_uploads_reach_workers_with_their_own_data_dirs_and_answers_cite_them(pg_stack: Stack) -> None:
    root = pg_stack.log_dir
    with client_for(pg_stack) as client:
        parts = [("files", (f"lab/p{i:04d}.md", io.BytesIO(note(i)), "text/markdown")) for i in range(FILES)]
        response = client.post("/v1/collections/shared-pg/documents", files=parts)
        assert response.status_code == 202, response.text
        job, _ = wait_for_job(client, response.json()["job_id"])
        assert job["state"] == "succeeded", job
        assert job["result"]["documents_indexed"] == FILES

        docs = client.get(f"/v1/jobs/{job['id']}/documents").json()["documents"]
        assert len({d["worker"] for d in docs}) == 2  # both index workers took part of the job
        for worker in ("index-1", "index-2"):
            data = root / f"{worker}-data"
            fetched = list((data / "uploads").rglob("*.md"))
            assert 0 < len(fetched) < FILES  # each fetched only its own batches' files from the database
            assert not (data / "collections").exists()  # and stored nothing locally

        info = client.get("/v1/collections/shared-pg").json()
        assert (info["documents"], info["chunks"]) == (FILES, FILES)
        # Loaded without them, the collection has its search indexes by the time its first job has finished.
        assert search_index_methods(pg_stack.env["VECTOR_STORE_URL"], "shared-pg") == ["gin", "hnsw"]
        assert info["search_indexes_built"] is True
        assert [c["name"] for c in client.get("/v1/collections").json()] == ["shared-pg"]

        query = client.post("/v1/queries", json={"collection": "shared-pg", "question": "P0017 的实验测量了什么？"})
        assert query.status_code == 202, query.text
        with client.stream("GET", query.json()["stream_url"]) as stream:
            events = list(iter_events(stream))
    assert events[0].event == "sources"
    assert events[0].data[0]["document"] == "lab/p0017.md"
    assert "P0017" in events[0].data[0]["text"]
    assert [e.event for e in events[1:-1]] == ["token"] * (len(events) - 2)
    assert "P0017" in "".join(e.data["text"] for e in events[1:-1])
    assert events[-1].event == "done"
    assert not (root / "query-data" / "collections").exists()


def _stages_of_an_upload(stack: Stack, client: httpx.Client, collection: str, numbers: range) -> list[str]:
    """The stages the job's record announced on its progress channel, in order, from submit to its end."""
    with redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True) as r, r.pubsub() as announcements:
        announcements.psubscribe(keys.progress_channel("*"))  # before the job exists: it announces nothing unheard
        parts = [("files", (f"lab/p{i:04d}.md", io.BytesIO(note(i)), "text/markdown")) for i in numbers]
        response = client.post(f"/v1/collections/{collection}/documents", files=parts)
        assert response.status_code == 202, response.text
        channel, stages = keys.progress_channel(response.json()["job_id"]), list[str]()
        while True:
            message = announcements.get_message(timeout=60)
            assert message is not None, f"the job announced no end: stages so far {stages}"
            if message["type"] != "pmessage" or message["channel"] != channel or message["data"] == "progress":
                continue  # another job's, or a batch's count (the record holds it; its stage is announced below)
            fields = json.loads(message["data"])
            if fields.get("stage"):
                stages.append(fields["stage"])
            if fields.get("state") in FINAL_STATES:
                assert fields["state"] == "succeeded", fields
                return stages


def test_a_first_load_says_it_is_building_the_search_indexes_and_a_later_job_does_not(pg_stack: Stack) -> None:
    with client_for(pg_stack) as client:
        first = _stages_of_an_upload(pg_stack, client, "stages-pg", range(100, 104))
        later = _stages_of_an_upload(pg_stack, client, "stages-pg", range(104, 108))
    assert first[-1] == JobStage.BUILDING_SEARCH_INDEXES, first
    assert JobStage.BUILDING_SEARCH_INDEXES not in later, later


def test_deleting_a_document_removes_it_for_every_machine(pg_stack: Stack) -> None:
    with client_for(pg_stack) as client:
        docs = client.get("/v1/collections/shared-pg/documents").json()["documents"]
        target = next(d for d in docs if d["source"] == "lab/p0005.md")
        assert client.delete(f"/v1/collections/shared-pg/documents/{target['id']}").status_code == 200
        query = client.post(
            "/v1/queries", json={"collection": "shared-pg", "question": "P0005", "mode": "bm25", "top_k": 3}
        )
        with client.stream("GET", query.json()["stream_url"]) as stream:
            sources = next(iter_events(stream)).data
    assert "lab/p0005.md" not in [s["document"] for s in sources]


def _start_and_fail(args: list[str], url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VECTOR_STORE_URL": url, "DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0"}
    return run_program(args, env)


API = [str(BIN / "uvicorn"), "api.main:app", "--port", "0", "--log-level", "warning"]
WORKER = [str(BIN / "celery"), "-A", "workers.celery_app:app", "worker", "-Q", "index", "-c", "1", "--loglevel=ERROR"]


@pytest.mark.parametrize("args", [API, WORKER], ids=["api", "worker"])
def test_a_database_that_does_not_answer_stops_the_process_with_one_line(args: list[str], tmp_path: Path) -> None:
    done = _start_and_fail(args, "postgresql://ragqueue@127.0.0.1:1/nowhere", tmp_path)
    assert done.returncode == 3
    [line] = [x for x in done.stderr.splitlines() if "VECTOR_STORE_URL" in x]
    assert "cannot start" in line and "does not answer" in line and "127.0.0.1:1" in line
    assert "Traceback" not in done.stderr


def test_a_database_without_pgvector_stops_the_api_with_one_line(tmp_path: Path) -> None:
    # A server of the suite's own whose installation lacks pgvector, as Debian's PostgreSQL packages do.
    folder = Path(tempfile.mkdtemp(prefix="ragqueue-pg-novector-"))
    server = PostgresServer.start_without_pgvector(folder)
    try:
        url = server.server.get_uri()
        with psycopg.connect(url, connect_timeout=2) as conn:
            assert not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        done = _start_and_fail(API, url, tmp_path)
    finally:
        server.discard()
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 3
    assert "lacks the pgvector extension" in done.stderr and "Traceback" not in done.stderr
