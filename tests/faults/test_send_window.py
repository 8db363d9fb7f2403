"""The short windows the end-to-end fault tests cannot aim at, made to happen on purpose.

A broker that accepts the connection and then dies before the send: the committed run is taken
back out with the rows its caller added, and a resumed run is put back as it was. And the 503
handler: only a lost database connection is a 503; any other database error stays a 500."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import unavailable
from app.errors import ServiceUnavailable
from app.main import create_app
from app.models import Project, Run, RunKind, RunMetric, RunStatus, SnapshotKind, User
from app.schemas.training import RunCreate
from app.services import runs
from app.services.runs import launching, lifecycle
from app.services.runs.queueing import BROKER_DOWN, BrokerUnreachable
from app.settings import Settings
from tests.broker_faults import dies_before_the_send, refuses_the_connection
from tests.factories import make_project
from tests.training_factories import make_model, make_run, make_snapshot


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


def count(db: Session, model: type[Run] | type[RunMetric]) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


def test_a_broker_lost_after_the_commit_takes_the_run_and_its_rows_back_out(
    db: Session,
    settings: Settings,
    project: Project,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    monkeypatch.setattr(launching, "connected_sender", dies_before_the_send)
    made: list[int] = []

    def add_row(run: Run) -> None:
        # Stands for an evaluation: a row of the caller's pointing at the new run.
        made.append(run.id)
        db.add(RunMetric(run_id=run.id, step=0, values={"loss": 1.0}))

    data = RunCreate(kind=RunKind.dpo, base_model_id=base.id, snapshot_id=snapshot.id)
    with pytest.raises(ServiceUnavailable) as refused:
        runs.create_run(db, settings, project.id, data, acting=admin, on_created=add_row)
    assert (refused.value.status_code, refused.value.message) == (503, BROKER_DOWN)
    assert len(made) == 1
    assert (count(db, Run), count(db, RunMetric)) == (0, 0)
    assert not (settings.data_dir / "runs" / str(made[0])).exists()


def test_a_broker_that_refuses_the_connection_leaves_the_callers_rows_unwritten(
    db: Session,
    settings: Settings,
    project: Project,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    db.commit()
    monkeypatch.setattr(launching, "connected_sender", refuses_the_connection)
    other = make_project(db, "flushed by the caller, not committed")
    data = RunCreate(kind=RunKind.dpo, base_model_id=base.id, snapshot_id=snapshot.id)
    with pytest.raises(BrokerUnreachable):
        runs.create_run(db, settings, project.id, data, acting=admin)
    assert count(db, Run) == 0
    assert db.scalar(select(Project.id).where(Project.name == other.name)) is None


def test_a_resume_the_broker_did_not_take_puts_the_run_back_as_it_was(
    db: Session,
    settings: Settings,
    project: Project,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    run = make_run(db, project, base, snapshot, RunKind.dpo)
    run.status, run.error, run.attempts = RunStatus.failed, "out of memory", 1
    run.artifacts = {"previous_errors": ["disk full"]}
    db.commit()
    monkeypatch.setattr(lifecycle, "connected_sender", dies_before_the_send)
    with pytest.raises(BrokerUnreachable):
        runs.resume_run(db, settings, run.id, acting=admin)
    db.expire_all()
    again = db.get(Run, run.id)
    assert again is not None
    assert (again.status, again.error, again.artifacts, again.finished_at) == (
        RunStatus.failed,
        "out of memory",
        {"previous_errors": ["disk full"]},
        run.finished_at,
    )


def gone() -> OperationalError:
    return OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))


def test_only_a_lost_or_busy_database_is_a_503(settings: Settings, engine: Engine) -> None:
    locked = OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))
    broken = OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: runs"))
    assert unavailable.database_unreachable(gone()) is True
    assert unavailable.database_unreachable(locked) is False
    assert unavailable.database_busy(locked) is True
    assert unavailable.database_busy(broken) is False

    app = create_app(settings, engine)
    unavailable.register(app)

    @app.get("/api/v1/fault/gone")
    @app.get("/fault/gone")
    def _gone() -> None:
        raise gone()

    @app.get("/api/v1/fault/locked")
    def _locked() -> None:
        raise locked

    @app.get("/api/v1/fault/broken")
    def _broken() -> None:
        raise broken

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/fault/gone")
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "database_unavailable")
        page = client.get("/fault/gone")
        assert (page.status_code, page.text) == (503, unavailable.PAGE)
        assert page.headers["X-Frame-Options"] == "DENY"
        # Busy is a 503 of its own (tests/test_unavailable.py); any other error stays a 500.
        answer = client.get("/api/v1/fault/locked")
        assert (answer.status_code, answer.json()["error"]["code"]) == (503, "database_busy")
        answer = client.get("/api/v1/fault/broken")
        assert (answer.status_code, answer.json()["error"]["code"]) == (500, "internal_error")
