"""Which id a worker's log lines carry: the job's for a task of one job, the batch's for a batch of questions."""

from __future__ import annotations

from shared.ingest.items import IndexItem
from shared.jobs.tasks import REQUEST_KWARG, IndexBatchTask, QueryBatchTask, QueryTask, TaskMessage
from shared.ops.log_setup import job_id_var, logging_job
from workers.log_signals import logged_job_id

JOB = "0123456789abcdef0123456789abcdef"


def _kwargs(message: TaskMessage) -> dict[str, object]:
    """The keyword arguments `shared.jobs.dispatch.send` gives a task."""
    return {REQUEST_KWARG: message.model_dump(mode="json", exclude_none=True)}


def test_an_index_batch_logs_under_its_job_id_not_its_task_id() -> None:
    item = IndexItem(name="a.md", doc_id="d1", path="/data/import/a.md")
    batch = IndexBatchTask(job_id=JOB, collection="c", batch=1, batches=2, items=[item])
    assert logged_job_id("9f1c-celery-task-id", _kwargs(batch)) == JOB


def test_a_batch_of_questions_logs_under_the_batch_id() -> None:
    asks = [QueryTask(job_id=f"{n:032x}", collection="c", question="q", top_k=4) for n in (1, 2)]
    assert logged_job_id("batch-77", _kwargs(QueryBatchTask(requests=asks))) == "batch-77"


def test_a_task_without_a_request_logs_under_its_task_id() -> None:
    assert logged_job_id("reap-1", {}) == "reap-1"
    assert logged_job_id("reap-1", None) == "reap-1"


def test_a_question_logs_under_its_job_id_then_the_batch_id_comes_back() -> None:
    token = job_id_var.set("batch-77")
    try:
        with logging_job(JOB):
            assert job_id_var.get() == JOB
        assert job_id_var.get() == "batch-77"
    finally:
        job_id_var.reset(token)
