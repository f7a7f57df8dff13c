"""Celery task names and queues, shared so the API can dispatch without importing worker code."""

from __future__ import annotations

INDEX_QUEUE = "index"
QUERY_QUEUE = "query"

INDEX_TASK = "ragqueue.index_documents"
INDEX_BATCH_TASK = "ragqueue.index_batch"
QUERY_TASK = "ragqueue.answer_query"
