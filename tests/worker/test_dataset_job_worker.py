"""A real `smiley worker` process runs dataset jobs end to end: the service commits the job and
sends its id through the broker, the worker claims it, imports the uploaded file (or writes a
snapshot) and records how it ended. On SQLite with the embedded broker, and on PostgreSQL with
Redis."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.models import DatasetJob, DatasetJobStatus, Role
from app.schemas.dataset_jobs import ImportJobCreate
from app.schemas.snapshots import SnapshotCreate
from app.services.dataset_jobs import start_import_job, start_snapshot_job
from app.settings import Settings
from tests.conftest import (
    REDIS_URL,
    MigratedDatabases,
    make_user,
    redis_db,
    unavailable,
)
from tests.factories import make_project

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1500


@pytest.fixture(params=["sqlite+embedded", "postgresql+redis"])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_databases: MigratedDatabases
) -> Iterator[Settings]:
    """Settings of a database and broker of this test's own: the worker commits for real."""
    data_dir = tmp_path / "data"
    secret = "worker-test-secret-" + "x" * 32
    if request.param == "sqlite+embedded":
        url = migrated_databases.sqlite(tmp_path / "jobs.sqlite3")
        yield Settings(data_dir=data_dir, database_url=url, secret_key=secret)
        return
    import redis

    broker = f"{REDIS_URL}/{redis_db(0)}"
    client = redis.Redis.from_url(broker)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    client.flushdb()
    url = migrated_databases.postgres("smiley_dataset_jobs")
    try:
        yield Settings(data_dir=data_dir, database_url=url, broker_url=broker, secret_key=secret)
    finally:
        migrated_databases.drop_postgres(url)
        client.flushdb()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


def start_worker(settings: Settings, **env_extra: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
    env.update(
        {
            "SMILEY_DATA_DIR": str(settings.data_dir),
            "SMILEY_DATABASE_URL": settings.resolved_database_url,
            "SMILEY_BROKER_URL": settings.broker_url,
            "SMILEY_SECRET_KEY": settings.resolved_secret_key,
            "SMILEY_WORKER_HEARTBEAT_SECONDS": "1",
            **env_extra,
        }
    )
    log = (settings.data_dir.parent / "worker.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--queues", "default", "--name", "datasets@%h"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        # To the main process only, as a service manager would: it stops its pool itself. A
        # SIGTERM to the whole group also hits the pool child, and on a busy machine Celery's
        # main process then waited out the 30 s below before being killed.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def wait_until_done(
    sessions: Callable[[], Session], job_id: int, settings: Settings, timeout: float = 120
) -> DatasetJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as db:
            job = db.get(DatasetJob, job_id)
            assert job is not None
            if job.status in (DatasetJobStatus.succeeded, DatasetJobStatus.failed):
                return job
        time.sleep(0.3)
    log = (settings.data_dir.parent / "worker.log").read_text(errors="replace")
    raise AssertionError(f"job {job_id} did not finish in {timeout}s; worker log:\n{log[-4000:]}")


def test_a_worker_runs_an_import_and_a_snapshot_job(settings: Settings, engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions() as db:
        staff = make_user(db, "rhea", Role.researcher)
        project = make_project(db, "Worked")
        db.commit()
        lines = "".join(json.dumps({"prompt": f"Prompt {i}"}) + "\n" for i in range(ROWS))
        job = start_import_job(
            db,
            settings,
            project.id,
            acting=staff,
            data=ImportJobCreate(on_error="stop"),
            upload=io.BytesIO(lines.encode()),
            upload_name="prompts.jsonl",
        )
        import_id, project_id, staff_id = job.id, project.id, staff.id
    assert job.status == DatasetJobStatus.queued

    worker = start_worker(settings)
    try:
        imported = wait_until_done(sessions, import_id, settings)
        assert imported.status == DatasetJobStatus.succeeded, imported.error
        assert (imported.rows_done, imported.bytes_done, imported.bytes_total) == (
            ROWS,
            len(lines.encode()),
            len(lines.encode()),
        )
        assert imported.result is not None
        assert (imported.result["records_imported"], imported.result["prompts_created"]) == (
            ROWS,
            ROWS,
        )
        assert imported.started_at is not None and imported.finished_at is not None
        assert list((settings.data_dir / "uploads").iterdir()) == []
        assert not (settings.data_dir / "jobs" / f"{import_id}.json").exists()

        with sessions() as db:
            staff = db.get(type(staff), staff_id)
            assert staff is not None
            snapshot_job = start_snapshot_job(
                db,
                settings,
                project_id,
                acting=staff,
                data=SnapshotCreate(name="All prompts", kind="prompts"),
            )
        written = wait_until_done(sessions, snapshot_job.id, settings)
        assert written.status == DatasetJobStatus.succeeded, written.error
        assert written.rows_done == ROWS
        assert written.result is not None and written.snapshot_id == written.result["id"]
        folder = settings.data_dir / written.result["path"]
        train = (folder / "train.jsonl").read_text().splitlines()
        test = (folder / "test.jsonl").read_text().splitlines()
        assert len(train) + len(test) == ROWS
    finally:
        stop_worker(worker)
