"""A database that cannot be reached, or is too busy to answer in time, answers 503, not a 500
traceback.

While PostgreSQL restarts (or the network to it drops), every request that touches it fails with
a connection error. That is not a bug in the request: nothing was written (the transaction died
with the connection) and the same request succeeds once the database is back, which the engine
notices by itself (pool_pre_ping drops dead connections). So the answer says exactly that: 503
with Retry-After, JSON under /api/ and a short page elsewhere.

Overload is the same kind of answer with another code, `database_busy`: on SQLite a writer that
waited its whole busy timeout for the one write lock ("database is locked"), anywhere a request
that waited its whole pool timeout for a connection ("QueuePool limit ... timed out"). Such a
request failed before its commit, and its session rolls back what it did (app/deps.py), so
nothing was recorded and the same request, with the same idempotency key, can simply be sent
again. On SQLite the message also says what fixes it for good: PostgreSQL.

Any other database error is not ours to judge and goes on to the app's catch-all 500 handler."""

from __future__ import annotations

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.api.errors import error_body
from app.web.security_headers import SECURITY_HEADERS

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = "the database is unreachable right now; nothing was recorded, try again in a few seconds"
PAGE = (
    "Smiley cannot reach its database right now. Nothing was saved by this request; "
    "wait a few seconds and try again."
)
# Busy: the request already waited its busy or pool timeout, so the client need not wait long.
BUSY_RETRY_AFTER_SECONDS = 2
BUSY_MESSAGE = (
    "the database is busy (every connection to it was in use, or this request ran into "
    "another one's locks); nothing was recorded, send the same request again in a moment"
)
SQLITE_BUSY_MESSAGE = (
    "the database is busy: SQLite lets one request write at a time and this one waited too "
    "long; nothing was recorded, send the same request again in a moment. For this many "
    "labelers at once, run Smiley on PostgreSQL (set SMILEY_DATABASE_URL, see the README's "
    "'Running at scale')"
)
BUSY_PAGE = (
    "Smiley is busy right now: too many people are saving at once. Nothing was saved by this "
    "request; wait a moment and try again."
)
SQLITE_BUSY_PAGE = (
    BUSY_PAGE + " For this many labelers at once, an admin can move Smiley to PostgreSQL "
    "(SMILEY_DATABASE_URL; see the README's 'Running at scale')."
)
# SQLite's result codes for a lock another connection holds: SQLITE_BUSY ("database is locked")
# and SQLITE_LOCKED ("database table is locked"); extended codes keep them in the low byte.
_SQLITE_LOCK_CODES = frozenset({5, 6})
# PostgreSQL's SQLSTATEs for a transaction it rolled back because it ran into another one: a
# serialization failure (40001) and a deadlock (40P01). Nothing of the request was kept, and the
# same request sent again succeeds: the busy answer, not a 500.
_CONFLICT_STATES = frozenset({"40001", "40P01"})
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


def database_busy(error: BaseException) -> bool:
    """Whether a SQLAlchemy error means the database is overloaded rather than broken: a lock
    or a pooled connection that did not come free in time, or a PostgreSQL transaction rolled
    back for a deadlock or a serialization failure. (PostgreSQL refusing a connection because
    it has too many is a failed connect, which database_unreachable answers.)"""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, OperationalError):
        return False
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        code = getattr(original, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_LOCK_CODES
        return str(original).startswith(("database is locked", "database table is locked"))
    return getattr(original, "sqlstate", None) in _CONFLICT_STATES


def busy_response(request: Request) -> Response:
    on_sqlite = request.app.state.engine.dialect.name == "sqlite"
    headers = {**SECURITY_HEADERS, "Retry-After": str(BUSY_RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/api/"):
        message = SQLITE_BUSY_MESSAGE if on_sqlite else BUSY_MESSAGE
        return JSONResponse(error_body("database_busy", message), status_code=503, headers=headers)
    page = SQLITE_BUSY_PAGE if on_sqlite else BUSY_PAGE
    return PlainTextResponse(page, status_code=503, headers=headers)


def unavailable_response(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            error_body("database_unavailable", MESSAGE), status_code=503, headers=headers
        )
    return PlainTextResponse(PAGE, status_code=503, headers=headers)


def register(app: FastAPI) -> None:
    """Adds the 503 handler for unreachable and overloaded databases to `app`."""

    async def _database_error(request: Request, error: Exception) -> Response:
        if database_busy(error):
            # Not the request's fault, but worth an operator's notice: it says the database
            # (or the pool) is too small for the load.
            logger.warning(
                "database busy, answered 503: %s %s: %s",
                request.method,
                request.url.path,
                str(getattr(error, "orig", None) or error).splitlines()[0],
            )
            return busy_response(request)
        if database_unreachable(error):
            return unavailable_response(request)
        # Not a connection problem: raised on to the catch-all handler, which answers 500 and
        # logs the traceback.
        raise error

    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
