"""Jobs: the record contract and its writer, index progress, worker heartbeats, and Celery task names."""
