"""A real `smiley worker` process records the lifecycle of real tasks into task_events: `sent`
in the sending process, then `started` and `succeeded` (or `failed`) in the worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app.db import make_engine, session_factory
from app.models import TaskEvent
from app.settings import Settings
from tests.conftest import MigratedDatabases
from tests.worker.test_dataset_job_worker import start_worker, stop_worker
from worker.celery_app import celery_for
from worker.events import recorder

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path, migrated_databases: MigratedDatabases) -> Settings:
    url = migrated_databases.sqlite(tmp_path / "events.sqlite3")
    return Settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="events-secret-" + "x" * 32
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


def _states(engine: Engine, task_id: str) -> list[tuple[str, str | None, str | None]]:
    with session_factory(engine)() as db:
        rows = db.scalars(select(TaskEvent).where(TaskEvent.task_id == task_id)).all()
        return sorted((row.state, row.error_type, row.hostname and "host") for row in rows)


def _wait_for(engine: Engine, task_id: str, count: int, timeout: float = 60) -> list[tuple]:
    deadline = time.monotonic() + timeout
    found = _states(engine, task_id)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.3)
        found = _states(engine, task_id)
    return found


def test_a_real_task_leaves_sent_started_and_succeeded(settings: Settings, engine: Engine) -> None:
    settings.ensure_data_dir()
    worker = start_worker(settings)
    try:
        celery = celery_for(settings)
        good = celery.send_task("smiley.ping", args=["probe"])
        # ping takes one argument: the worker fails this one with a TypeError.
        bad = celery.send_task("smiley.ping", args=[])
        recorder.flush()
        assert _wait_for(engine, good.id, 3) == [
            ("sent", None, None),
            ("started", None, "host"),
            ("succeeded", None, "host"),
        ]
        assert _wait_for(engine, bad.id, 3) == [
            ("failed", "TypeError", "host"),
            ("sent", None, None),
            ("started", None, "host"),
        ]
    finally:
        stop_worker(worker)
