"""A cap on request bodies and headers, so one huge request cannot fill the server's memory.

A request whose headers pass 64 KiB is refused with 431. A body whose Content-Length is over
the cap is refused with 413 before a byte of it is read. A body sent without a length
(chunked) is counted as it arrives; once past the cap, reading it raises a 413 HTTPException,
which the app's error handlers turn into the usual JSON error or error page (FastAPI passes
HTTPExceptions raised while parsing a body on unchanged).

Dataset uploads keep their own, larger limit (SMILEY_MAX_UPLOAD_BYTES, checked by their
routes), so their paths are exempt from the body cap (not from the header cap)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 16 * 1024**2
# uvicorn's httptools parser reads headers of any size; nothing Smiley sends needs more than a
# few KiB (browsers cap cookies at 4 KiB each), so more is refused before any route runs.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# Routes that take dataset files; they check SMILEY_MAX_UPLOAD_BYTES themselves.
UPLOAD_PATHS: tuple[str, ...] = (
    r"/api/v1/projects/\d+/imports",
    r"/projects/\d+/datasets/imports",
)


class HeadersTooLarge(HTTPException):
    """431 for request headers past the cap."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            status_code=431,
            detail=f"the request headers are larger than the limit of {max_bytes:,} bytes",
        )


class BodyTooLarge(HTTPException):
    """413 for a request body past the cap."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"the request body is larger than the limit of {max_bytes:,} bytes",
        )


class BodyLimitMiddleware:
    """Refuses request bodies over `max_bytes`, except on the `exempt` paths (regexes matched
    against the whole path)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        exempt: Iterable[str] = UPLOAD_PATHS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        if max_bytes < 1 or max_header_bytes < 1:
            raise ValueError("the limits must be at least 1 byte")
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.exempt = re.compile("|".join(f"(?:{pattern})" for pattern in exempt) or r"(?!)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            await self._refuse(scope, send, HeadersTooLarge(self.max_header_bytes))
            return
        if self.exempt.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send, BodyTooLarge(self.max_bytes))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            # Raised where no handler caught it (e.g. a body read by middleware): answer here,
            # unless an answer had already begun, in which case the connection just ends.
            if started:
                raise
            await self._refuse(scope, send, BodyTooLarge(self.max_bytes))

    async def _refuse(self, scope: Scope, send: Send, refusal: HTTPException) -> None:
        message = refusal.detail
        if scope["path"].startswith("/api/"):
            body = json.dumps(
                {"error": {"code": "http_error", "message": message, "field": None}}
            ).encode()
            content_type = b"application/json"
        else:
            body = f"Request refused: {message}.".encode()
            content_type = b"text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status_code,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    # The unread body stays on the socket, so the connection is not reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
