"""A database that cannot be reached answers 503, not a 500 traceback.

While PostgreSQL restarts (or the network to it drops), every request that touches it fails with
a connection error. That is not a bug in the request: nothing was written (the transaction died
with the connection) and the same request succeeds once the database is back, which the engine
notices by itself (pool_pre_ping drops dead connections). So the answer says exactly that: 503
with Retry-After, JSON under /api/ and a short page elsewhere. Any other database error is not
ours to judge and goes on to the app's catch-all 500 handler."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.api.errors import error_body
from app.web.security_headers import SECURITY_HEADERS

RETRY_AFTER_SECONDS = 5
MESSAGE = "the database is unreachable right now; nothing was recorded, try again in a few seconds"
PAGE = (
    "Smiley cannot reach its database right now. Nothing was saved by this request; "
    "wait a few seconds and try again."
)
# PostgreSQL's SQLSTATEs for a lost or refused connection: class 08 (connection exception),
# the server shutting down or crashing under us (57P01, 57P02) and one still starting (57P03).
_CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03"})


def database_unreachable(error: BaseException) -> bool:
    """Whether a SQLAlchemy error means the database could not be reached (so a retry later can
    succeed), as opposed to a bad statement, a constraint or a lock timeout."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg ships with the app
        return False
    if isinstance(original, psycopg.InterfaceError):
        # Raised on a connection psycopg already knows is closed.
        return True
    if not isinstance(original, psycopg.OperationalError):
        return False
    state = getattr(original, "sqlstate", None)
    # A failed connect carries no SQLSTATE at all: libpq never got as far as the server.
    return state is None or state.startswith("08") or state in _CONNECTION_STATES


def unavailable_response(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            error_body("database_unavailable", MESSAGE), status_code=503, headers=headers
        )
    return PlainTextResponse(PAGE, status_code=503, headers=headers)


def register(app: FastAPI) -> None:
    """Adds the 503 handler for unreachable-database errors to `app`."""

    async def _database_error(request: Request, error: Exception) -> Response:
        if database_unreachable(error):
            return unavailable_response(request)
        # Not a connection problem: raised on to the catch-all handler, which answers 500 and
        # logs the traceback.
        raise error

    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
