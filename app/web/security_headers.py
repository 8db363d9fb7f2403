"""Security headers on every response, and the API docs page with the one relaxed policy.

The policy forbids inline scripts, inline event handlers, eval and inline styles: even if
untrusted text ever reached a page unescaped, the browser would refuse to run it. Pages load
their JS from /static and pass data through data-* attributes or JSON <script> blocks.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

# Swagger UI comes from FastAPI's CDN page (it is not vendored: a 1.5 MB bundle for a page that
# only people with network access use anyway). Its policy allows that CDN and the page's own
# inline script by hash, computed from the very HTML served, and still forbids eval. Its
# style-src allows inline styles because Swagger UI's components style themselves; the page
# shows only Smiley's own schema, so no untrusted text could use that.
SWAGGER_CDN = "https://cdn.jsdelivr.net"
SWAGGER_FAVICON_ORIGIN = "https://fastapi.tiangolo.com"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def swagger_ui_policy(html: str) -> str:
    """The docs page's policy, allowing exactly the inline scripts `html` contains."""
    hashes = " ".join(
        "'sha256-{}'".format(
            base64.b64encode(hashlib.sha256(script.encode()).digest()).decode("ascii")
        )
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {SWAGGER_CDN} {hashes}".rstrip(),
            f"style-src {SWAGGER_CDN} 'unsafe-inline'",
            f"img-src 'self' data: {SWAGGER_FAVICON_ORIGIN}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def swagger_ui(request: Request) -> HTMLResponse:
    """GET /api/v1/docs: Swagger UI over the app's OpenAPI schema, with its own policy."""
    app = request.app
    page = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI")
    html = bytes(page.body).decode()
    return HTMLResponse(html, headers={"Content-Security-Policy": swagger_ui_policy(html)})


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: adds SECURITY_HEADERS to every HTTP response that lacks them.

    A route may set its own Content-Security-Policy (only the docs page does); every other
    header is forced, so no response can opt out of nosniff or framing protection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name == "Content-Security-Policy":
                        headers.setdefault(name, value)
                    else:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
