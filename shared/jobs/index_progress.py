"""Progress of an index job shared by many batch tasks, kept true under redelivery.

Each batch owns three fields (its chunks planned, chunks embedded, documents finished); the job's counts
are their sums, recomputed inside Redis on every update (a redelivered batch overwrites its own fields instead of adding
to a counter twice). A batch marks itself finished in a set; the one whose mark completes the set finalises the
job. So does a batch delivered again once the set is complete while the job has not ended: the finaliser died
(its worker killed while it built the search indexes, say) and the broker or the prefork parent delivered the
last batch again, which would otherwise find its mark already there and leave the job running for good.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from shared import keys
from shared.jobs.document_status import DocStatus, DocumentStatus
from shared.jobs.records import JobStage
from shared.ops import metrics_store

PROGRESS_SCRIPT = """
redis.call('HSET', KEYS[2], ARGV[1] .. ':planned', ARGV[2], ARGV[1] .. ':done', ARGV[3], ARGV[1] .. ':docs', ARGV[7])
local fields = redis.call('HGETALL', KEYS[2])
local sums = {planned = 0, done = 0, docs = 0}
for i = 1, #fields, 2 do
  local kind = string.match(fields[i], ':(%a+)$')
  if sums[kind] ~= nil then sums[kind] = sums[kind] + tonumber(fields[i + 1]) end
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'done', sums.done, 'total', sums.planned, 'stage', ARGV[4],
             'documents_done', sums.docs, 'updated_at', ARGV[5])
  redis.call('PUBLISH', KEYS[3], 'progress')
end
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {sums.done, sums.planned}
"""

FINISH_BATCH_SCRIPT = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if redis.call('SCARD', KEYS[1]) ~= tonumber(ARGV[2]) then return 0 end
if added == 1 then return 1 end
local state = redis.call('HGET', KEYS[2], 'state')
if state == 'queued' or state == 'running' then return 1 end
return 0
"""


class IndexProgress:
    """One batch's view of its index job's shared progress."""

    def __init__(self, client: redis.Redis, job_id: str, batch: int, ttl_s: int, worker: str | None = None) -> None:
        self.client = client
        self.worker = worker
        self.job_id = job_id
        self.batch = batch
        self.ttl_s = ttl_s
        self._progress = client.register_script(PROGRESS_SCRIPT)
        self._finish = client.register_script(FINISH_BATCH_SCRIPT)
        self.planned = 0
        self.done = 0
        self.documents_done = 0

    def update(self, stage: JobStage) -> None:
        job = self.job_id
        self._progress(
            keys=[keys.job_key(job), keys.job_batches_key(job), keys.progress_channel(job)],
            args=[self.batch, self.planned, self.done, stage, time.time(), self.ttl_s, self.documents_done],
        )

    def document(
        self,
        name: str,
        doc_id: str,
        status: DocStatus,
        chunks: int = 0,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        """Record a document's status; a failed one's `error` says why, `code` (if any) is a stable error code."""
        self.documents([(name, doc_id)], status, [chunks], error, code)

    def documents(
        self,
        names_and_ids: list[tuple[str, str]],
        status: DocStatus,
        chunks: list[int] | None = None,
        error: str | None = None,
        code: str | None = None,
        counted: bool = False,
    ) -> None:
        """Record one status for several documents (a batch's, which change together) in one round trip; `counted`:
        indexed documents whose chunks an earlier delivery already added to the indexed-chunks metric."""
        if not names_and_ids:
            return
        counts: list[int] = chunks or [0] * len(names_and_ids)
        indexed_chunks: int = sum(counts)
        statuses = {
            name: DocumentStatus(
                name=name, doc_id=doc_id, status=status, chunks=n, error=error, code=code, worker=self.worker
            ).stored()
            for (name, doc_id), n in zip(names_and_ids, counts, strict=True)
        }
        key = keys.job_documents_key(self.job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=cast(Any, statuses))
        pipe.expire(key, self.ttl_s)
        if status == DocStatus.INDEXED and indexed_chunks and not counted:  # `/metrics`: chunks indexed per second
            pipe.hincrby(keys.metric_counters_key(), metrics_store.field(metrics_store.INDEX_CHUNKS), indexed_chunks)
        pipe.execute()

    def indexed_before(self, names: list[str]) -> set[str]:
        """Which of these documents the job already records as indexed (by an earlier delivery of this batch)."""
        if not names:
            return set()
        values = cast(list[str | None], self.client.hmget(keys.job_documents_key(self.job_id), names))
        return {
            name
            for name, value in zip(names, values, strict=True)
            if value is not None and DocumentStatus.from_stored(name, value).status == DocStatus.INDEXED
        }

    def start_attempt(self) -> int:
        """Count a delivery of this batch; returns which attempt this is (1 for the first)."""
        key = keys.job_batches_key(self.job_id)
        attempt = int(self.client.hincrby(key, f"{self.batch}:attempts", 1))
        self.client.expire(key, self.ttl_s)
        return attempt

    def finish_batch(self, batches: int) -> bool:
        """Mark this batch finished; True when the caller is to finalise the job: it finished the job's last batch,
        or it is a batch delivered again after that while the job is still open (its finaliser died)."""
        script_keys = [keys.job_finished_batches_key(self.job_id), keys.job_key(self.job_id)]
        return bool(self._finish(keys=script_keys, args=[self.batch, batches, self.ttl_s]))


def queue_documents(client: redis.Redis, job_id: str, names_and_ids: list[tuple[str, str]], ttl_s: int) -> None:
    """Record every document of a job as queued, before its batches start."""
    key = keys.job_documents_key(job_id)
    for start in range(0, len(names_and_ids), 1000):
        part = names_and_ids[start : start + 1000]
        mapping = {
            name: DocumentStatus(name=name, doc_id=doc_id, status=DocStatus.QUEUED).stored() for name, doc_id in part
        }
        client.hset(key, mapping=cast(Any, mapping))
    client.expire(key, ttl_s)


def document_statuses(client: redis.Redis, job_id: str) -> list[DocumentStatus]:
    """Every document of the job, by name."""
    raw = cast(dict[str, str], client.hgetall(keys.job_documents_key(job_id)))
    return [DocumentStatus.from_stored(name, value) for name, value in sorted(raw.items())]
