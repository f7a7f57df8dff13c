"""The HTTP side of ragqueue: FastAPI app, routes, and the SSE relay."""
