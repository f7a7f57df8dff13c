"""Celery workers: index and query tasks."""
