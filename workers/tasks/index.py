"""The `index` queue's tasks: a coordinator that plans a job, and batch tasks that index its documents.

The coordinator turns the request into one item per document and splits them into batches of
INDEX_BATCH_FILES, so several index workers share one job and no task holds more than a batch of
documents in memory. Each batch loads, normalises, splits, embeds and stores its documents and reports
progress into the job's shared record (shared/jobs/index_progress.py); the batch that finishes last
finalises the job. Every step is idempotent: a redelivered task leaves one copy of each chunk.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from celery import Task

from shared import keys
from shared.ingest.import_paths import (
    SUPPORTED_TYPES,
    ImportPathError,
    SkippedFile,
    check_import_file,
    display_path,
    find_import_files,
    resolve_import_path,
)
from shared.ingest.items import IndexItem, path_item
from shared.jobs.dispatch import send
from shared.jobs.document_status import DocStatus
from shared.jobs.heartbeat import Heartbeat
from shared.jobs.index_progress import IndexProgress, document_statuses, queue_documents
from shared.jobs.index_result import IndexResult
from shared.jobs.record_writer import JobRecordWriter
from shared.jobs.records import JobError, JobField, JobStage, JobState
from shared.jobs.tasks import INDEX_BATCH_TASK, INDEX_TASK, IndexBatchTask, IndexTask
from shared.providers.upstream_errors import classify_embedding_error
from shared.store import CollectionStore, DocumentWrite, EmbeddingMismatchError
from shared.streams.events import ErrorCode
from shared.usage import UsageField
from workers.celery_app import app
from workers.chunk_splitter import ChunkSplitter
from workers.indexing import SplitDocument, embed_chunks, load_and_split
from workers.loaders import LoadLimits, UnreadableDocument
from workers.runtime import Runtime, get_runtime
from workers.usage import record_usage

log = logging.getLogger(__name__)
MAX_BATCH_ATTEMPTS = 3


@app.task(name=INDEX_TASK, bind=True)
def index_documents(self: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Plan the job: server-side `paths` or uploaded `items` (shared/jobs/tasks.py `IndexTask`)."""
    task = IndexTask.model_validate(request)
    job_id, collection = task.job_id, task.collection
    rt = get_runtime()
    settings = rt.settings
    job = JobRecordWriter(rt.redis, job_id, settings.JOB_TTL_S)
    job.running(JobStage.PLANNING)
    try:
        items, skipped = _plan(rt, task)
    except (ImportPathError, EmbeddingMismatchError) as exc:
        code = getattr(exc, "code", ErrorCode.EMBEDDING_MISMATCH.value)
        job.finish(JobState.FAILED, error=JobError(code=code, message=str(exc)))
        return {"state": "failed"}
    if not items:
        message = f"no supported files ({SUPPORTED_TYPES}) found in {task.paths}"
        if skipped:
            message += "; skipped: " + "; ".join(f"{s.name} ({s.reason})" for s in skipped[:5])
        job.finish(JobState.FAILED, error=JobError(code="nothing_indexed", message=message))
        return {"state": "failed"}

    size = settings.INDEX_BATCH_FILES
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    queue_documents(rt.redis, job_id, [(item.name, item.doc_id) for item in items], settings.JOB_TTL_S)
    skipped_report = IndexProgress(rt.redis, job_id, 0, settings.JOB_TTL_S)
    for entry in skipped:  # listed as failed documents, so the job's result and statuses name them
        skipped_report.document(entry.name, "", DocStatus.FAILED, error=f"skipped: {entry.reason}")
    rt.redis.hset(keys.job_key(job_id), mapping={JobField.FILES: len(items), JobField.BATCHES: len(batches)})
    job.running(JobStage.LOADING)
    for number, batch in enumerate(batches):
        send(app, IndexBatchTask(job_id=job_id, collection=collection, batch=number, batches=len(batches), items=batch))
    return {"files": len(items), "batches": len(batches)}


def _plan(rt: Runtime, task: IndexTask) -> tuple[list[IndexItem], list[SkippedFile]]:
    store = rt.store(task.collection)
    if store.exists():
        store.check_embedding(rt.embed_model_name)
    if task.items is not None:
        return task.items, []
    # Every file found while walking is resolved and re-checked against the roots: a symlink must not escape them.
    listing = find_import_files([resolve_import_path(p, rt.settings) for p in task.paths or []], rt.settings)
    return [path_item(f, display_path(f, rt.settings)) for f in listing.files], listing.skipped


@app.task(name=INDEX_BATCH_TASK, bind=True)
def index_batch(self: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Index one batch (shared/jobs/tasks.py `IndexBatchTask`); the last batch to finish finalises the job."""
    task = IndexBatchTask.model_validate(request)
    rt = get_runtime()
    settings = rt.settings
    # While it runs; a batch whose heartbeat stopped is requeued by the reaper (workers/index_reaper.py).
    beat = keys.batch_heartbeat_key(task.job_id, task.batch)
    with Heartbeat(rt.redis, task.job_id, settings.HEARTBEAT_INTERVAL_S, settings.HEARTBEAT_TTL_S, key=beat):
        return _run_batch(self.request.hostname, rt, task)


def _run_batch(worker: str, rt: Runtime, task: IndexBatchTask) -> dict[str, Any]:
    job_id, collection, items = task.job_id, task.collection, task.items
    progress = IndexProgress(rt.redis, job_id, task.batch, rt.settings.JOB_TTL_S, worker=worker)
    attempt = progress.start_attempt()
    if attempt > MAX_BATCH_ATTEMPTS:
        # Delivered again and again because its worker keeps dying on it (a file that crashes the parser or
        # exhausts memory): give up on this batch instead of looping forever.
        reason = f"the worker died {attempt - 1} times while indexing this batch; its files were skipped"
        counts = _fail_batch(progress, items, reason)
    else:
        try:
            counts = _index_batch(rt, progress, collection, items)
        except Exception as exc:  # the store or the embedding service failed: every document of the batch fails
            log.exception("index job %s batch %s failed", job_id, task.batch)
            code, reason = classify_embedding_error(exc)
            counts = _fail_batch(progress, items, reason, code)
    if progress.finish_batch(task.batches):
        _finalise(rt, job_id, collection)
    return counts


def _fail_batch(
    progress: IndexProgress, items: list[IndexItem], reason: str, code: str | None = None
) -> dict[str, int]:
    progress.documents([(item.name, item.doc_id) for item in items], DocStatus.FAILED, error=reason, code=code)
    progress.documents_done = len(items)
    progress.update(JobStage.STORING)
    return {"failed": len(items)}


def _index_batch(rt: Runtime, progress: IndexProgress, collection: str, items: list[IndexItem]) -> dict[str, int]:
    settings = rt.settings
    splitter = ChunkSplitter(chunk_size=settings.CHUNK_SIZE, chunk_overlap=settings.CHUNK_OVERLAP)
    limits = LoadLimits.from_settings(settings)
    documents: list[tuple[IndexItem, SplitDocument]] = []
    failed = 0
    # A delivery after one that stored documents (its worker died before the job ended, or the broker delivered it
    # twice) finds them stored: they stay this job's indexed documents, never turn unchanged, and are not marked
    # indexing again, so a delivery running beside another reads the same.
    indexed_before = progress.indexed_before([item.name for item in items])
    # The rest are indexing from now until the batch's one transaction stores them: one round trip.
    indexing = [(item.name, item.doc_id) for item in items if item.name not in indexed_before]
    progress.documents(indexing, DocStatus.INDEXING)
    for item in items:
        local = item
        try:
            local = item.model_copy(update={"path": str(rt.stores.blobs.local_path(item.blob))}) if item.blob else item
            if not item.blob:
                check_import_file(Path(item.path), settings)
            documents.append((item, load_and_split(local, splitter, limits)))
        except Exception as exc:  # one broken file fails alone; the rest are indexed
            # Named as the user knows it, never by the absolute path where the server keeps it.
            # A loader's own refusal reads as a sentence; anything else (a parser's crash) keeps its type's name.
            raw = str(exc) if isinstance(exc, UnreadableDocument) else f"{type(exc).__name__}: {exc}"
            error = raw.replace(local.path, item.name).replace(item.path, item.name)
            progress.document(item.name, item.doc_id, DocStatus.FAILED, error=error)
            progress.documents_done += 1
            failed += 1
    progress.planned = sum(len(doc.chunks) for _, doc in documents)
    progress.update(JobStage.EMBEDDING)

    def advance(n: int) -> None:
        progress.done += n
        progress.update(JobStage.EMBEDDING)

    store = rt.store(collection)
    changed: list[tuple[IndexItem, SplitDocument]] = []
    unchanged: list[tuple[IndexItem, SplitDocument]] = []
    stored = store.document_sha256s([doc.doc_id for _, doc in documents]) if store.exists() else {}
    for item, doc in documents:
        (unchanged if stored.get(doc.doc_id) == doc.sha256 else changed).append((item, doc))
    if unchanged:
        progress.documents_done += len(unchanged)
        advance(sum(len(doc.chunks) for _, doc in unchanged))
        _record_split(progress, [p for p in unchanged if p[0].name not in indexed_before], DocStatus.UNCHANGED)
        _record_split(progress, [p for p in unchanged if p[0].name in indexed_before], DocStatus.INDEXED, counted=True)
    if changed:  # one embedding stream for the whole batch keeps every concurrent request slot busy
        vectors = embed_chunks(
            rt.embed_model, [c for _, doc in changed for c in doc.chunks], settings.EMBED_BATCH_SIZE, advance
        )
        store.ensure(rt.embed_model_name, int(vectors.shape[1]))
        progress.update(JobStage.STORING)
        writes, start = [], 0
        for _, doc in changed:  # every document has at least one chunk (load_and_split ensures it)
            end = start + len(doc.chunks)
            writes.append(DocumentWrite(doc.doc_id, doc.source, doc.sha256, doc.chunks, vectors[start:end]))
            start = end
        # One transaction for the batch: a connection, lookups and term counts per document cost more than its rows.
        store.replace_documents(writes)
        _record_split(progress, changed, DocStatus.INDEXED)
        progress.documents_done += len(changed)
        progress.update(JobStage.STORING)
        embedded = len(vectors)
        counts = {UsageField.EMBEDDED_CHUNKS: embedded, UsageField.EMBEDDED_TEXTS: embedded}
        record_usage(rt.redis, progress.job_id, {**counts, UsageField.DOCUMENTS_STORED: len(changed)})
    return {"indexed": len(changed), "unchanged": len(unchanged), "failed": failed}


def _record_split(
    progress: IndexProgress,
    documents: list[tuple[IndexItem, SplitDocument]],
    status: DocStatus,
    counted: bool = False,
) -> None:
    """One status, with each document's chunk count, for documents of the batch that changed together (`counted`:
    their chunks are already in the indexed-chunks metric)."""
    progress.documents(
        [(item.name, item.doc_id) for item, _ in documents],
        status,
        [len(d.chunks) for _, d in documents],
        counted=counted,
    )


def _finalise(rt: Runtime, job_id: str, collection: str) -> None:
    """Summarise the job from its documents' statuses and end it."""
    job = JobRecordWriter(rt.redis, job_id, rt.settings.JOB_TTL_S)
    statuses = document_statuses(rt.redis, job_id)
    result = IndexResult.of(collection, statuses)
    store = rt.store(collection)
    if store.exists():
        if not store.info().search_indexes_built:  # a first load on PostgreSQL: minutes for a large one
            job.running(JobStage.BUILDING_SEARCH_INDEXES)
        _build_search_indexes(store, job_id)
        info = store.info()
        result.collection_documents, result.collection_chunks = info.documents, info.chunks
        result.embed_model, result.dimension = info.embed_model, info.dimension
    if result.documents_indexed + result.documents_unchanged == 0:
        reasons = "; ".join(f"{f.source}: {f.error}" for f in result.failed[:5])
        # One upstream cause for every failure (the embedding service down or rate-limiting): its code, so a client
        # can tell "index again later" from "these files cannot be read".
        codes = {status.code for status in statuses}
        code = codes.pop() if len(codes) == 1 and None not in codes else "nothing_indexed"
        job.finish(JobState.FAILED, result=result, error=JobError(code=str(code), message=reasons))
    else:
        job.finish(JobState.SUCCEEDED, result=result)


def _build_search_indexes(store: CollectionStore, job_id: str) -> None:
    """Build the indexes a collection's first load deferred, whatever the job's outcome, so what it stored is
    searchable with them; once built, this is one catalog read. A failed build leaves the job's result alone:
    searches stay correct (exact scans) and the collection's next finalise builds them."""
    try:
        started = time.perf_counter()
        if built := store.build_search_indexes():
            log.info(
                "index job %s: built %s for collection %s in %.1f s",
                job_id,
                ", ".join(built),
                store.name,
                time.perf_counter() - started,
            )
    except Exception:
        log.exception("index job %s: building the search indexes of collection %s failed", job_id, store.name)
