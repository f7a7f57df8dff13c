"""Request bodies are bounded while they are read: a 413 as soon as the bytes pass the limit, not after parsing.

A body over MAX_JSON_BODY_BYTES (uploads: MAX_UPLOAD_REQUEST_BYTES) is refused from its Content-Length before a
byte is read, and a body sent without one (chunked) when its running count passes the limit (otherwise a 64 MB
`/v1/queries` body is parsed in full before its 413). Pure ASGI, so nothing is buffered here.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_json

# The one route whose body is files (api/routes/documents.py); it has its own, larger limit.
UPLOAD_PATH = re.compile(r"/v1/collections/[^/]+/documents")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the count passes the limit; api/errors.py answers it as 413 request_too_large."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and UPLOAD_PATH.fullmatch(scope["path"]) is not None
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
            await error_json(413, "request_too_large", f"the request body is over {limit} bytes")(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
