"""One ASGI middleware per request: its id (taken or made), echoed in the response, set for
every log record; one structured access line; and the request counters."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.context import REQUEST_ID_HEADER, accepted_request_id, request_id_var
from app.observability.metrics import HttpMetrics

access_log = logging.getLogger("smiley.access")
error_log = logging.getLogger("smiley.errors")

# Requests that matched no route are counted under one label, so that scanners trying
# random paths cannot grow the metrics without bound.
UNMATCHED_ROUTE = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's path template (/api/v1/queues/{queue_id}), not the raw path."""
    # FastAPI keeps included routers nested: the route's own path lacks their prefixes, and
    # the full template is in the context FastAPI records for the matched route.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if scope.get("path", "").startswith("/static/"):
        return "/static"
    return UNMATCHED_ROUTE


def user_id_of(scope: Scope) -> int | None:
    """The authenticated user's id, where an auth dependency left it in request.state."""
    state: dict[str, Any] = scope.get("state") or {}
    user_id = state.get("user_id")
    return user_id if isinstance(user_id, int) else None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        # Also in request.state, for handlers that run outside this middleware (the 500 page).
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            error_log.exception("unhandled error in %s %s", scope["method"], route_template(scope))
            raise
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.observe(scope["method"], route, status, seconds)
            access_log.info(
                "%s %s %s",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": user_id_of(scope),
                },
            )
            request_id_var.reset(token)
