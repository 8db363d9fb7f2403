"""An overloaded database answers 503 `database_busy` with Retry-After, never a 500, and keeps
nothing of the refused request: SQLite's write lock held past the busy timeout, a pool with no
connection free before the pool timeout, and a PostgreSQL deadlock or serialization failure
(app/unavailable.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.db import make_engine
from app.main import create_app
from app.models import Assignment, AssignmentStatus, Comparison, Pair, QueueKind
from app.services import assignments
from app.settings import Settings
from app.unavailable import (
    BUSY_MESSAGE,
    SQLITE_BUSY_MESSAGE,
    SQLITE_BUSY_PAGE,
    database_busy,
)
from app.web.security_headers import SECURITY_HEADERS
from tests.conftest import MigratedDatabases, bearer, make_token, make_user, web_login
from tests.factories import make_comparison_tasks, make_project, make_queue

API = "/api/v1"


@dataclass
class Served:
    client: TestClient
    engine: Engine
    queue_id: int
    token: str

    def count(self, model: type) -> int:
        with Session(self.engine) as db:
            return int(db.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def serve(url: str, tmp_path: Path, **engine_options: Any) -> Iterator[Served]:
    """The app on its own database, engine as asked, with a labeler (lena) holding a token and
    a comparison queue of two tasks."""
    engine = make_engine(url, **engine_options)
    with Session(engine, expire_on_commit=False) as db:
        project = make_project(db)
        queue = make_queue(db, project, QueueKind.comparison)
        make_comparison_tasks(db, queue, project, 2, 2)
        token = make_token(db, make_user(db, "lena"))
    settings = Settings(data_dir=tmp_path / "data", database_url=url, secret_key="o" * 40)
    try:
        with TestClient(create_app(settings, engine), follow_redirects=False) as client:
            yield Served(client, engine, queue.id, token)
    finally:
        engine.dispose()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection holds SQLite's one write lock, as a long writer does."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def assert_busy(answer: httpx.Response, message: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json() == {"error": {"code": "database_busy", "message": message, "field": None}}
    assert answer.headers["Retry-After"] == "2"
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value


def comparison_body(assignment: dict[str, Any], key: str) -> dict[str, Any]:
    return {
        "items": [
            {"response_id": response["id"], "score": 6 - rank, "rank": rank}
            for rank, response in enumerate(assignment["responses"], start=1)
        ],
        "idempotency_key": key,
    }


@pytest.fixture
def sqlite_path(tmp_path: Path, migrated_databases: MigratedDatabases) -> Path:
    path = tmp_path / "busy.sqlite3"
    migrated_databases.sqlite(path)
    return path


def test_a_submit_that_waits_out_the_sqlite_lock_is_a_503_and_its_retry_is_stored_once(
    sqlite_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(f"sqlite:///{sqlite_path}", tmp_path, busy_ms=50) as served:
        api = served.client
        headers = bearer(served.token)
        assignment = api.post(f"{API}/queues/{served.queue_id}/lease", headers=headers).json()[
            "assignment"
        ]
        submit = f"{API}/assignments/{assignment['id']}/comparison"
        body = comparison_body(assignment, "busy-key-1")

        with write_lock(sqlite_path):
            assert_busy(api.post(submit, json=body, headers=headers), SQLITE_BUSY_MESSAGE)
            assert_busy(
                api.post(f"{API}/queues/{served.queue_id}/lease", headers=headers),
                SQLITE_BUSY_MESSAGE,
            )
        assert (served.count(Comparison), served.count(Pair)) == (0, 0)
        with Session(served.engine) as db:
            statuses = list(db.scalars(select(Assignment.status)))
        assert statuses == [AssignmentStatus.active]
        busy = [r for r in caplog.records if r.name == "app.unavailable"]
        assert [(r.levelname, r.getMessage()) for r in busy] == [
            ("WARNING", f"database busy, answered 503: POST {submit}: database is locked"),
            (
                "WARNING",
                f"database busy, answered 503: POST {API}/queues/{served.queue_id}/lease: "
                "database is locked",
            ),
        ]

        # The lock gone, the same request (same key) is taken once, and a repeat is a replay.
        first = api.post(submit, json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert (first.json()["replayed"], first.json()["pairs"]) == (False, 1)
        assert api.post(submit, json=body, headers=headers).json()["replayed"] is True
        assert (served.count(Comparison), served.count(Pair)) == (1, 1)


def test_a_workbench_submit_that_waits_out_the_sqlite_lock_gets_a_503_page(
    sqlite_path: Path, tmp_path: Path
) -> None:
    with serve(f"sqlite:///{sqlite_path}", tmp_path, busy_ms=50) as served:
        web = served.client
        csrf = web_login(web, "lena")
        started = web.post(f"/work/queues/{served.queue_id}/start", data={"csrf_token": csrf})
        assert started.status_code == 303, started.text
        assignment_url = started.headers["location"]
        form = {"csrf_token": csrf, "score_A": "6", "rank_A": "1", "score_B": "2", "rank_B": "2"}
        submit = f"{assignment_url}/comparison"

        with write_lock(sqlite_path):
            refused = web.post(submit, data=form, headers={"HX-Request": "true"})
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("text/plain")
        assert refused.text == SQLITE_BUSY_PAGE
        assert refused.headers["Retry-After"] == "2"
        assert served.count(Comparison) == 0

        # What the workbench then does: the very same form again (its idempotency key is the
        # assignment's), taken once.
        for _ in range(2):
            taken = web.post(submit, data=form, headers={"HX-Request": "true"})
            assert taken.status_code == 200, taken.text
        assert served.count(Comparison) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_no_pooled_connection_free_in_time_is_a_503(
    backend: str, tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    if backend == "sqlite":
        url = migrated_databases.sqlite(tmp_path / "pool.sqlite3")
        message = SQLITE_BUSY_MESSAGE
    else:
        url = migrated_databases.postgres("smiley_pool")
        message = BUSY_MESSAGE
    try:
        with serve(url, tmp_path, pool_size=1, max_overflow=0, pool_timeout=0.05) as served:
            queues = f"{API}/me/queues"
            headers = bearer(served.token)
            held = served.engine.connect()  # the pool's only connection
            try:
                assert_busy(served.client.get(queues, headers=headers), message)
            finally:
                held.close()
            answer = served.client.get(queues, headers=headers)
            assert answer.status_code == 200, answer.text
            assert [queue["queue_id"] for queue in answer.json()] == [served.queue_id]
    finally:
        if backend == "postgresql":
            migrated_databases.drop_postgres(url)


def test_only_lock_errors_are_busy() -> None:
    def wrapped(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))

    assert database_busy(wrapped("database is locked"))
    assert database_busy(wrapped("database table is locked"))
    assert not database_busy(wrapped("no such table: prompts"))
    assert not database_busy(wrapped("disk I/O error"))


def test_a_postgres_deadlock_or_serialization_failure_is_busy() -> None:
    def wrapped(error: Exception) -> OperationalError:
        return OperationalError("UPDATE assignments", {}, error)

    assert database_busy(wrapped(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert database_busy(wrapped(psycopg.errors.SerializationFailure("could not serialize")))
    assert not database_busy(wrapped(psycopg.errors.QueryCanceled("statement timeout")))
    assert not database_busy(wrapped(psycopg.errors.DiskFull("no space left on device")))


def test_a_submit_that_deadlocks_is_a_503_and_its_retry_is_stored_once(
    migrated_databases: MigratedDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL chose this request's transaction to roll back: 503 with Retry-After, the
    assignment still open, and the same request sent again stores one label."""
    url = migrated_databases.postgres("smiley_deadlock")
    try:
        with serve(url, tmp_path) as served:
            submit_once_deadlocked(served, monkeypatch)
    finally:
        migrated_databases.drop_postgres(url)


def submit_once_deadlocked(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    leased = served.client.post(
        f"{API}/queues/{served.queue_id}/lease", headers=bearer(served.token)
    )
    assignment = leased.json()["assignment"]
    submit = assignments.submit_comparison

    def deadlocked(db: Session, assignment_id: int, *args: Any, **kwargs: Any) -> Any:
        # The claim went through, then PostgreSQL picked this transaction to break a deadlock.
        db.execute(
            update(Assignment)
            .where(Assignment.id == assignment_id)
            .values(status=AssignmentStatus.submitted)
        )
        raise OperationalError(
            "UPDATE assignments", {}, psycopg.errors.DeadlockDetected("deadlock detected")
        )

    monkeypatch.setattr(assignments, "submit_comparison", deadlocked)
    url = f"{API}/assignments/{assignment['id']}/comparison"
    body = comparison_body(assignment, "deadlock-1")
    refused = served.client.post(url, json=body, headers=bearer(served.token))
    assert_busy(refused, BUSY_MESSAGE)
    assert served.count(Comparison) == 0
    with Session(served.engine) as db:
        assert db.get(Assignment, assignment["id"]).status == AssignmentStatus.active
    monkeypatch.setattr(assignments, "submit_comparison", submit)
    stored = served.client.post(url, json=body, headers=bearer(served.token))
    assert stored.status_code == 201, stored.text
    again = served.client.post(url, json=body, headers=bearer(served.token))
    assert again.json()["replayed"] is True
    assert served.count(Comparison) == 1
