"""Celery task names, queues and typed arguments, shared so the API can dispatch without importing worker code.

Every task takes one keyword argument, `request`: its model below, dumped to JSON. The model is the contract
between the producer (shared/jobs/dispatch.py) and the task (workers/tasks/), checked on both sides; Flower
shows it by field name.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from shared.eval_set import EvalCase
from shared.ingest.items import IndexItem
from shared.store.retrieval_modes import DEFAULT_MODE, RetrievalMode

INDEX_QUEUE = "index"
QUERY_QUEUE = "query"
# Housekeeping (the reaper) that every worker consumes too, so it runs while any worker of either kind lives.
MAINTENANCE_QUEUE = "maintenance"

INDEX_TASK = "ragqueue.index_documents"
INDEX_BATCH_TASK = "ragqueue.index_batch"
QUERY_TASK = "ragqueue.answer_query"
QUERY_BATCH_TASK = "ragqueue.answer_queries"
REAP_TASK = "ragqueue.reap"
EVALUATION_TASK = "ragqueue.evaluate_retrieval"

# The keyword under which a task receives its request.
REQUEST_KWARG = "request"


class TaskMessage(BaseModel):
    """Arguments of one task message; `TASK` and `QUEUE` say where it goes."""

    TASK: ClassVar[str]
    QUEUE: ClassVar[str]


class TaskRequest(TaskMessage):
    """The task of one job."""

    job_id: str


class ChatTurn(BaseModel):
    """One earlier turn of a conversation, used to rewrite a follow-up into a standalone question."""

    role: Literal["system", "user", "assistant"]
    content: str


class QueryTask(TaskRequest):
    TASK: ClassVar[str] = QUERY_TASK
    QUEUE: ClassVar[str] = QUERY_QUEUE

    collection: str
    question: str
    top_k: int = Field(ge=1)
    history: list[ChatTurn] = []
    mode: RetrievalMode = DEFAULT_MODE
    rerank: bool = True  # false: skip the reranking stage for this question (when a reranker is configured)
    # The key id that asked (the job record's owner), so the worker counts the answer's usage without reading the
    # record; "" with keys off: counted for nobody.
    owner: str = ""


class QueryBatchTask(TaskMessage):
    """Queries an API process received while it was sending the previous task message, sent as one.

    Taking a message off the queue costs a worker's Celery consumer several Redis round trips and task events;
    in a burst of questions that, not the answers, limited how fast answers could start. Each request is
    answered as if it had come alone (api/query_dispatch.py).
    """

    TASK: ClassVar[str] = QUERY_BATCH_TASK
    QUEUE: ClassVar[str] = QUERY_QUEUE

    requests: list[QueryTask] = Field(min_length=1)


class IndexTask(TaskRequest):
    """Plan an index job: server-side `paths` under the import root, or uploaded `items`; exactly one of them."""

    TASK: ClassVar[str] = INDEX_TASK
    QUEUE: ClassVar[str] = INDEX_QUEUE

    collection: str
    paths: list[str] | None = None
    items: list[IndexItem] | None = None


class IndexBatchTask(TaskRequest):
    """One batch (`batch` of `batches`, counted from 0) of an index job's documents."""

    TASK: ClassVar[str] = INDEX_BATCH_TASK
    QUEUE: ClassVar[str] = INDEX_QUEUE

    collection: str
    batch: int = Field(ge=0)
    batches: int = Field(ge=1)
    items: list[IndexItem]


class EvaluationTask(TaskRequest):
    """Retrieve every case's question in every mode and score it (workers/tasks/evaluation.py); on the index queue,
    so an evaluation never takes a worker from answers. `lines`: each case's line in the uploaded set."""

    TASK: ClassVar[str] = EVALUATION_TASK
    QUEUE: ClassVar[str] = INDEX_QUEUE

    collection: str
    k: int = Field(ge=1)
    cases: list[EvalCase] = Field(min_length=1)
    lines: list[int]
