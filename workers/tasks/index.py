"""The `index` queue's task: turn files under the import roots into a collection's chunks."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from llama_index.core.node_parser import SentenceSplitter

from shared.events import ErrorCode
from shared.heartbeat import Heartbeat
from shared.importing import ImportPathError, expand_files, resolve_import_path
from shared.job_store import JobStore
from shared.jobs import JobError, JobState
from shared.store import EmbeddingMismatchError
from shared.tasks import INDEX_TASK
from workers.celery_app import app
from workers.indexing import SplitDocument, embed_chunks, load_and_split
from workers.runtime import get_runtime

log = logging.getLogger(__name__)


@app.task(name=INDEX_TASK, bind=True)
def index_documents(self: Task, job_id: str, collection: str, paths: list[str]) -> dict[str, Any]:
    """Load → normalise → split → embed → store; progress counts chunks embedded of chunks planned."""
    rt = get_runtime()
    settings = rt.settings
    job = JobStore(rt.redis, job_id, settings.JOB_TTL_S)
    with Heartbeat(rt.redis, job_id, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_TTL_S):
        job.running("loading")
        try:
            result = _run(rt, job, collection, paths)
        except (ImportPathError, EmbeddingMismatchError, _NothingIndexed) as exc:
            code = getattr(exc, "code", ErrorCode.EMBEDDING_MISMATCH.value)
            job.finish(JobState.FAILED, error=JobError(code=code, message=str(exc)))
            return {"state": "failed"}
        except Exception as exc:
            log.exception("index job %s failed", job_id)
            message = f"{type(exc).__name__}: {exc}"
            job.finish(JobState.FAILED, error=JobError(code=ErrorCode.INTERNAL, message=message))
            return {"state": "failed"}
        job.finish(JobState.SUCCEEDED, result=result)
        return result


class _NothingIndexed(ValueError):
    code = "nothing_indexed"


def _run(rt: Any, job: JobStore, collection: str, paths: list[str]) -> dict[str, Any]:
    settings = rt.settings
    files = expand_files([resolve_import_path(p, settings) for p in paths])
    if not files:
        raise _NothingIndexed(f"no supported files (txt, md, pdf, docx, html) found in {paths}")

    splitter = SentenceSplitter(chunk_size=settings.CHUNK_SIZE, chunk_overlap=settings.CHUNK_OVERLAP)
    documents: list[SplitDocument] = []
    failures: list[dict[str, str]] = []
    for n, path in enumerate(files, start=1):
        try:
            documents.append(load_and_split(path, splitter))
        except Exception as exc:  # one broken file fails alone; the rest are indexed
            failures.append({"source": str(path), "error": f"{type(exc).__name__}: {exc}"})
        job.progress(0, 0, f"splitting {n}/{len(files)} files")
    if not documents:
        raise _NothingIndexed("; ".join(f"{f['source']}: {f['error']}" for f in failures))

    store = rt.store(collection)
    if store.exists():
        store.check_embedding(rt.embed_model_name, store.info().dimension)
    total = sum(len(d.chunks) for d in documents)
    done = 0
    job.progress(done, total, "embedding")

    def advance(n: int) -> None:
        nonlocal done
        done += n
        job.progress(done, total, "embedding")

    unchanged = 0
    for doc in documents:
        if store.exists() and store.document_sha256(doc.doc_id) == doc.sha256:
            unchanged += 1
            advance(len(doc.chunks))
            continue
        vectors = embed_chunks(rt.embed_model, doc.chunks, settings.EMBED_BATCH_SIZE, advance)
        store.ensure(rt.embed_model_name, int(vectors.shape[1]))
        job.progress(done, total, "storing")
        store.replace_document(doc.doc_id, doc.source, doc.sha256, doc.chunks, vectors)

    info = store.info()
    return {
        "collection": collection,
        "files": len(files),
        "documents_indexed": len(documents) - unchanged,
        "documents_unchanged": unchanged,
        "chunks": total,
        "failed": failures,
        "collection_documents": info.documents,
        "collection_chunks": info.chunks,
        "embed_model": info.embed_model,
        "dimension": info.dimension,
    }
