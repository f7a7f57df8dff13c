"""Query streams: the event contract, the Redis replay log, and the worker-side publisher and token coalescer."""
