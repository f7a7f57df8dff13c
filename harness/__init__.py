"""What tests and benchmarks start: the local server that speaks Zhipu's wire protocol (`harness.fakes`), a
private redis-server and stacks of real API and Celery worker processes (`harness.processes`), a private
PostgreSQL with pgvector (`harness.postgres`) and an SSE reader (`harness.sse`). Not part of the service: nothing
under api/, workers/, shared/ or cli/ imports it."""
