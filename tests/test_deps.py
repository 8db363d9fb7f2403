"""The request's database session (app/deps.py get_db) against a real server and PostgreSQL:
a connection that dies after the answer was written fails neither that answer nor the
client's keep-alive connection."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, text

from app.db import make_engine
from app.deps import SessionDep
from app.main import create_app
from app.settings import Settings
from tests.conftest import MigratedDatabases, postgres_admin_engine


@pytest.fixture
def postgres_url(migrated_databases: MigratedDatabases) -> Iterator[str]:
    url = migrated_databases.postgres("smiley_deps")
    try:
        yield url
    finally:
        migrated_databases.drop_postgres(url)


def serve(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # log_config=None: uvicorn leaves logging alone, so its records reach caplog.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    return server, thread, port


def terminate_backend(admin: Engine, pid: int) -> None:
    """Kills one PostgreSQL backend, as a crash would, and waits until it is gone."""
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ):
            assert time.monotonic() < deadline, f"backend {pid} did not end"
            time.sleep(0.01)


def test_a_connection_lost_after_the_answer_fails_neither_the_answer_nor_keep_alive(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(postgres_url)
    admin = postgres_admin_engine()
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url, secret_key="d" * 40)
    app = create_app(settings, engine)

    def answers_then_loses_its_connection(db: SessionDep) -> dict[str, int]:
        # The request's transaction is open (the session began it); its backend dies before
        # the answer is sent, and the session finds out only when it is closed afterwards.
        pid = int(db.scalar(text("SELECT pg_backend_pid()")))
        terminate_backend(admin, pid)
        return {"pid": pid}

    app.add_api_route("/doomed", answers_then_loses_its_connection, methods=["GET"])
    server, thread, port = serve(app)
    caplog.set_level(logging.INFO)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/doomed")
        first = connection.getresponse()
        assert first.status == 200
        pid = json.loads(first.read())["pid"]
        sock = connection.sock
        assert sock is not None  # kept alive by both sides
        # Wait for the request to end (the access line comes after the session's close), then
        # ask again on the same connection: the server kept it open, and a fresh backend
        # serves the request.
        deadline = time.monotonic() + 10
        while not [r for r in caplog.records if r.name == "smiley.access"]:
            assert time.monotonic() < deadline, "the first request never ended"
            time.sleep(0.01)
        connection.request("GET", "/doomed")
        second = connection.getresponse()
        assert second.status == 200
        assert json.loads(second.read())["pid"] != pid
        assert connection.sock is sock
        connection.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
        admin.dispose()

    assert [r.levelname for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = [r for r in caplog.records if r.name == "app.db"]
    assert len(warnings) == 2
    assert {r.levelname for r in warnings} == {"WARNING"}
    assert (
        warnings[0]
        .getMessage()
        .startswith(
            "the database connection failed while closing a session after its answer; "
            "the connection is discarded: "
        )
    )
    statuses = [r.status for r in caplog.records if r.name == "smiley.access"]  # type: ignore[attr-defined]
    assert statuses == [200, 200]
