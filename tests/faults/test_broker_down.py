"""The job queue (Redis) dies under a running web app, then comes back on the same port.

Labeling does not need the broker and goes on. Launching or resuming a run answers a clear 503
within seconds and records nothing (no run row, no input files, the resumed run unchanged); a
snapshot job is recorded as failed with a sentence saying why. With Redis back, the very same
launch and resume succeed and their ids reach the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import (
    DatasetJob,
    DatasetJobStatus,
    QueueKind,
    Role,
    Run,
    RunKind,
    RunStatus,
    SnapshotKind,
)
from app.services.runs.queueing import BROKER_DOWN
from app.settings import Settings
from tests.conftest import MigratedDatabases, make_token, make_user
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.faults.conftest import SECRET_KEY, RedisServer, WebServer
from tests.training_factories import make_model, make_run, make_snapshot

# One group: each starts private servers on free ports and times windows of a few seconds.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

API = "/api/v1"
# A refusal must come quickly: no publish retries, a short connect timeout.
QUICK_SECONDS = 5.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def run_count(engine_url: str) -> int:
    engine = make_engine(engine_url)
    with Session(engine) as db:
        count = db.scalar(select(func.count()).select_from(Run)) or 0
    engine.dispose()
    return count


def test_with_redis_down_labeling_goes_on_and_launches_answer_503_recording_nothing(
    broker: RedisServer, tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    data_dir = tmp_path / "data"
    database_url = migrated_databases.sqlite(tmp_path / "smiley.sqlite3")
    settings = Settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET_KEY)
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as db:
        project = make_project(db)
        queue = make_queue(db, project, QueueKind.comparison)
        make_comparison_tasks(db, queue, project, 2, 2)
        base = make_model(db, settings, "base")
        snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
        old = make_run(db, project, base, snapshot, RunKind.dpo)
        old.status, old.error, old.attempts = RunStatus.failed, "out of memory", 1
        db.commit()
        labeler = make_token(db, make_user(db, "lena"))
        researcher = make_token(db, make_user(db, "rhea", Role.researcher))
    engine.dispose()

    server = WebServer(data_dir, database_url, broker_url=broker.url)
    server.start()
    queued = redis.Redis(port=broker.port)
    launch = {
        "kind": "dpo",
        "base_model_id": base.id,
        "snapshot_id": snapshot.id,
        "hyperparameters": {"max_steps": 5},
    }
    try:
        as_labeler = httpx.Client(
            base_url=server.base_url + API,
            headers={"Authorization": f"Bearer {labeler}"},
            timeout=30,
        )
        as_researcher = httpx.Client(
            base_url=server.base_url + API,
            headers={"Authorization": f"Bearer {researcher}"},
            timeout=30,
        )
        broker.kill()

        # Labeling never touches the broker.
        leased = as_labeler.post(f"/queues/{queue.id}/lease").json()["assignment"]
        submitted = as_labeler.post(
            f"/assignments/{leased['id']}/comparison",
            json={
                "items": [
                    {"response_id": response["id"], "score": 5 - rank, "rank": rank}
                    for rank, response in enumerate(leased["responses"], start=1)
                ],
                "idempotency_key": "while-redis-is-down",
            },
        )
        assert submitted.status_code == 201, submitted.text
        assert submitted.json()["pairs"] == 1

        started = time.monotonic()
        refused = as_researcher.post(f"/projects/{project.id}/runs", json=launch)
        assert time.monotonic() - started < QUICK_SECONDS
        assert refused.status_code == 503, refused.text
        assert refused.json() == {
            "error": {"code": "broker_unavailable", "message": BROKER_DOWN, "field": None}
        }
        assert run_count(database_url) == 1
        assert not (data_dir / "runs").exists()

        started = time.monotonic()
        refused = as_researcher.post(f"/runs/{old.id}/resume")
        assert time.monotonic() - started < QUICK_SECONDS
        assert (refused.status_code, refused.json()["error"]["code"]) == (503, "broker_unavailable")
        unchanged = as_researcher.get(f"/runs/{old.id}").json()
        assert (unchanged["status"], unchanged["error"]) == ("failed", "out of memory")

        # A snapshot job is recorded, as failed, with the reason: the list shows what happened.
        started = time.monotonic()
        job = as_researcher.post(
            f"/projects/{project.id}/snapshots", json={"name": "sft rows", "kind": "sft"}
        )
        assert time.monotonic() - started < QUICK_SECONDS
        assert job.status_code == 202, job.text
        assert (job.json()["status"], job.json()["error"]) == (
            "failed",
            "could not queue the job: the job queue (broker) is unreachable; start it again "
            "once the broker is back",
        )

        # Redis back on the same port, the web app untouched: the same requests go through.
        broker.start()
        launched = as_researcher.post(f"/projects/{project.id}/runs", json=launch)
        assert launched.status_code == 202, launched.text
        assert launched.json()["status"] == "queued"
        resumed = as_researcher.post(f"/runs/{old.id}/resume")
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["status"] == "queued"
        assert queued.llen("gpu") == 2
        assert server.starts == 1
    finally:
        queued.close()
        server.stop()

    engine = make_engine(database_url)
    with Session(engine) as db:
        assert sorted(db.scalars(select(Run.id))) == [old.id, launched.json()["id"]]
        assert [job.status for job in db.scalars(select(DatasetJob))] == [DatasetJobStatus.failed]
    engine.dispose()
