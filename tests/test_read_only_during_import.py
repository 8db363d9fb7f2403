"""On SQLite an import holds the database's write lock for its whole transaction. The pages
and API routes that show a job's progress only read, so they must answer meanwhile instead of
queueing behind it: they run in deferred (read-only) transactions, and a login's last-seen
touch is dropped rather than waited for."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.main import create_app
from app.models import DatasetJob, DatasetJobKind, DatasetJobStatus, Role
from app.models.base import utcnow
from app.services.dataset_jobs import LiveProgress
from app.settings import Settings
from tests.conftest import MigratedDatabases, bearer, make_token, make_user, web_login
from tests.factories import make_project


@pytest.fixture
def world(
    tmp_path: Path, migrated_databases: MigratedDatabases
) -> Iterator[tuple[TestClient, Settings, int, str, str]]:
    url = migrated_databases.sqlite(tmp_path / "smiley.sqlite3")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="test-secret-key-" + "x" * 32
    )
    engine = make_engine(url)
    with session_factory(engine)() as db:
        researcher = make_user(db, "rhea", Role.researcher)
        token = make_token(db, researcher)
        project = make_project(db)
        job = running_job(db, project.id)
        db.commit()
        job_id = job.id
    LiveProgress(settings, job_id).update(4000, 1 << 20, force=True)
    with TestClient(create_app(settings, engine), follow_redirects=False) as client:
        web_login(client, "rhea")
        yield client, settings, job_id, token, url
    engine.dispose()


def running_job(db: Session, project_id: int) -> DatasetJob:
    job = DatasetJob(
        project_id=project_id,
        kind=DatasetJobKind.import_rows,
        status=DatasetJobStatus.running,
        params={},
        source_name="big.jsonl",
        rows_done=0,
        bytes_done=0,
        bytes_total=1 << 21,
        started_at=utcnow(),
    )
    db.add(job)
    db.flush()
    return job


def test_job_progress_answers_while_another_connection_holds_the_write_lock(world) -> None:
    client, _, job_id, token, url = world
    importer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    importer.execute("BEGIN IMMEDIATE")
    importer.execute("UPDATE projects SET description = 'importing'")
    try:
        started = time.monotonic()
        api = client.get(f"/api/v1/dataset-jobs/{job_id}", headers=bearer(token))
        row = client.get(f"/dataset-jobs/{job_id}/row")
        elapsed = time.monotonic() - started
    finally:
        importer.execute("ROLLBACK")
        importer.close()
    assert api.status_code == 200, api.text
    assert (api.json()["rows_done"], api.json()["bytes_done"], api.json()["fraction"]) == (
        4000,
        1 << 20,
        0.5,
    )
    assert row.status_code == 200
    assert "big.jsonl" in row.text
    # Well under SQLite's 30 s busy timeout, which a write transaction would have waited.
    assert elapsed < 10
