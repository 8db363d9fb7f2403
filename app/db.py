"""Engine and session factory. SQLite gets the pragmas that make a shared file safe."""

from __future__ import annotations

import logging
import select
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings, get_settings

# An execution option: sessions bound with it only read (deferred BEGIN on SQLite).
READ_ONLY = "smiley_read_only"
BUSY_MS = 30_000
READ_ONLY_BUSY_MS = 500
# Settings.web_database_pool_size's default, for engines made without settings.
POOL_SIZE = 20

logger = logging.getLogger(__name__)


def make_engine(url: str, *, busy_ms: int = BUSY_MS, **kwargs: Any) -> Engine:
    """An engine for `url`; `busy_ms` is how long a SQLite writer waits for the write lock
    before its request answers 503 `database_busy` (app/unavailable.py)."""
    if url.startswith("sqlite"):
        # check_same_thread off: the pool hands a connection to one thread at a time, and
        # FastAPI runs sync routes on worker threads.
        engine = create_engine(
            url, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False}, **kwargs
        )
        _configure_sqlite(engine, busy_ms)
        return engine
    # A web process keeps as many connections as it serves requests at once (Settings'
    # web_database_pool_size, also its thread limit: app/main.py), so none opens its own.
    kwargs.setdefault("pool_size", POOL_SIZE)
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    # The pre-ping asks the socket rather than the server: a "SELECT 1" per checkout was a
    # round trip (and PostgreSQL CPU) on every request of the labeling hot path.
    engine.dialect.do_ping = _socket_ping  # type: ignore[method-assign]
    return engine


def _socket_ping(dbapi_connection: Any) -> bool:
    """Whether a pooled PostgreSQL connection is still usable, without a round trip. An idle
    connection has nothing to read; a server that restarted, or killed the backend, has sent
    its goodbye (an error and the end of the stream), so the socket reads as ready. False makes
    the pool open a new connection (a notice the server sent an idle connection costs one
    reconnect, nothing more)."""
    if dbapi_connection.closed:
        return False
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    return not readable


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT and defers BEGIN; hand it to
        # SQLAlchemy (the recipe in SQLAlchemy's SQLite dialect docs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets the web process read while the worker writes; the busy timeout makes writers
        # wait for each other instead of failing at once.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            # A read-only request (read_only_session in app/deps.py) must not queue behind a
            # long writer, such as an import, which holds the write lock for its whole
            # transaction: under WAL a deferred transaction reads beside it. Its rare writes
            # (a login's last-seen touch) give up quickly instead of waiting.
            conn.exec_driver_sql(f"PRAGMA busy_timeout={min(READ_ONLY_BUSY_MS, busy_ms)}")
            conn.exec_driver_sql("BEGIN")
            return
        # IMMEDIATE takes the write lock at BEGIN. A deferred transaction that reads and then
        # writes fails at once ("database is locked", the busy timeout cannot help) when another
        # connection wrote in between; taking the lock first makes writers wait their turn.
        conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache
def _engine_for(url: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        return make_engine(url)
    return make_engine(url, pool_size=pool_size)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.ensure_data_dir()
    return _engine_for(settings.resolved_database_url, settings.web_database_pool_size)


def session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def iter_session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


def close_session(db: Session) -> None:
    """Closes a request's session after its answer was sent (app/deps.py).

    What is left to do then is only to roll back what the request did not commit, so a
    database that dies at that moment (a crash, a restart, a killed backend) loses nothing. It
    must not fail the answer already sent either: raised on, the error would be logged as a 500
    and the server would drop the client's keep-alive connection. So the connection is
    discarded (the pool opens a fresh one next time) and a warning says what happened."""
    try:
        db.close()
    except DBAPIError as error:
        logger.warning(
            "the database connection failed while closing a session after its answer; "
            "the connection is discarded: %s",
            str(error.orig or error).strip().splitlines()[0],
        )
        # Usually already invalidated by the failure (a disconnect); if not, its state is
        # unknown and it must not go back to the pool.
        db.invalidate()
