"""Celery task names and queues, shared so the API can dispatch without importing worker code."""

from __future__ import annotations

INDEX_QUEUE = "index"
QUERY_QUEUE = "query"
# Housekeeping (the reaper) that every worker consumes too, so it runs while any worker of either kind lives.
MAINTENANCE_QUEUE = "maintenance"

INDEX_TASK = "ragqueue.index_documents"
INDEX_BATCH_TASK = "ragqueue.index_batch"
QUERY_TASK = "ragqueue.answer_query"
REAP_TASK = "ragqueue.reap"
