"""The ASGI app: both front doors, static files, and one place that turns errors into answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import api, unavailable, web
from app.api import errors as api_errors
from app.api import health, metrics, openapi
from app.db import get_engine, session_factory
from app.deps import LoginRequired, PasswordChangeRequired
from app.errors import DomainError
from app.observability.metrics import HttpMetrics
from app.observability.middleware import RequestContextMiddleware
from app.settings import Settings, get_settings
from app.web import api_docs
from app.web import errors as web_errors
from app.web.body_limit import BodyLimitMiddleware
from app.web.security_headers import SECURITY_HEADERS, SecurityHeadersMiddleware

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _is_api(request: Request) -> bool:
    # /healthz answers JSON too: a wrong token or a bad `probe` is a JSON error, not a page.
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or get_engine(settings)
    # Fail at start, not at first request, when the secret key is unusable.
    settings.resolved_secret_key  # noqa: B018

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # As many worker threads (sync routes and dependencies) as pooled connections: a
        # thread never waits for a connection nor opens one of its own (anyio's default is 40,
        # the pool's 5 plus 10 opened and closed again as needed).
        to_thread.current_default_thread_limiter().total_tokens = settings.web_database_pool_size
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Smiley",
        summary="Human feedback for post-training language models",
        version="0.1.0",
        # FastAPI's own routes answer anyone and its docs page loads Swagger UI from a CDN
        # with an inline script; ours are for signed-in users and load everything from
        # /static (app/api/openapi.py, app/web/api_docs.py). No ReDoc: see api_docs.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.read_sessions = session_factory(engine, read_only=True)

    app.state.http_metrics = HttpMetrics()
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(openapi.router)
    app.include_router(api_docs.router)
    app.include_router(api.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Inside the security headers, so its 413 and 431 answers carry them too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    # Added last, so outermost of ours: its request id covers every other middleware's logs.
    app.add_middleware(RequestContextMiddleware, metrics=app.state.http_metrics)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, error: Exception) -> Response:
        # Starlette answers these from its outermost middleware, outside the one that adds the
        # security headers, so they are set here, with the request id (that middleware is
        # outside this answer too). The error is still raised on, and logged.
        headers = dict(SECURITY_HEADERS)
        if request_id := getattr(request.state, "request_id", None):
            headers["X-Request-ID"] = request_id
        if _is_api(request):
            return api_errors.JSONResponse(
                api_errors.error_body("internal_error", "something went wrong on our side"),
                status_code=500,
                headers=headers,
            )
        return PlainTextResponse(
            "Something went wrong on our side. Your last change may not have been saved; "
            "go back and try again.",
            status_code=500,
            headers=headers,
        )

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, error: DomainError) -> Response:
        if _is_api(request):
            return api_errors.domain_error_response(error)
        return web_errors.domain_error_page(request, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
        if _is_api(request):
            return api_errors.validation_error_response(request, error)
        return web_errors.validation_error_page(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if _is_api(request) or request.url.path.startswith("/static/"):
            code = "not_found" if error.status_code == 404 else "http_error"
            return api_errors.JSONResponse(
                api_errors.error_body(code, str(error.detail)),
                status_code=error.status_code,
                headers=getattr(error, "headers", None),
            )
        page_error = DomainError(str(error.detail))
        page_error.status_code = error.status_code
        return web_errors.domain_error_page(request, page_error)

    # Database connection loss: 503, before the catch-all's 500.
    unavailable.register(app)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        return web_errors.login_redirect(request)

    @app.exception_handler(PasswordChangeRequired)
    async def _password_change(request: Request, _: PasswordChangeRequired) -> Response:
        return web_errors.password_change_redirect(request)

    return app
