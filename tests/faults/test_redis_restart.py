"""Redis without persistence is killed and restarted with jobs queued: every message is gone.

Before, the jobs stayed `queued` for ever (the reapers only look at running jobs). Now a worker's
heartbeat sends each id again once it has been queued for SMILEY_QUEUED_RESEND_SECONDS: the
dataset jobs run, once each, and the runs' messages wait in the `gpu` queue again."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.models import DatasetJob, DatasetJobStatus, Role, Run, RunStatus
from app.schemas.dataset_jobs import ImportJobCreate
from app.services.dataset_jobs import TASK_NAME, start_import_job
from app.services.resending import held_messages
from app.services.runs.queueing import TRAIN_TASK, enqueue_run
from app.settings import Settings
from tests.conftest import MigratedDatabases, make_user
from tests.factories import make_project
from tests.faults.conftest import SECRET_KEY, RedisServer
from tests.training_factories import make_model, make_run, make_snapshot
from tests.worker.test_dataset_job_worker import start_worker, stop_worker

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

JOBS = 3
RUNS = 3


def test_jobs_queued_when_redis_lost_its_messages_are_sent_again_and_run_once(
    tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    broker = RedisServer(tmp_path)
    broker.start()
    database_url = migrated_databases.sqlite(tmp_path / "smiley.sqlite3")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=broker.url,
        secret_key=SECRET_KEY,
    )
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    worker = None
    try:
        with sessions() as db:
            staff = make_user(db, "rhea", Role.researcher)
            project = make_project(db)
            base = make_model(db, settings, "base")
            snapshot = make_snapshot(db, settings, project)
            run_ids = [make_run(db, project, base, snapshot).id for _ in range(RUNS)]
            job_ids = [
                start_import_job(
                    db,
                    settings,
                    project.id,
                    acting=staff,
                    data=ImportJobCreate(on_error="stop"),
                    upload=io.BytesIO(json.dumps({"prompt": f"Prompt {n}"}).encode() + b"\n"),
                    upload_name="prompts.jsonl",
                ).id
                for n in range(JOBS)
            ]
        for run_id in run_ids:
            enqueue_run(settings, run_id)
        sent = {(TRAIN_TASK, n) for n in run_ids} | {(TASK_NAME, n) for n in job_ids}
        assert held_messages(settings) == sent

        broker.kill()
        broker.start()
        assert held_messages(settings) == set()

        # A worker for the `default` queue only: it runs the dataset jobs, and sends the runs'
        # ids again to the `gpu` queue, where they wait for a GPU worker.
        worker = start_worker(settings, SMILEY_QUEUED_RESEND_SECONDS="1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sessions() as db:
                statuses = [db.get_one(DatasetJob, job_id).status for job_id in job_ids]
            if all(status == DatasetJobStatus.succeeded for status in statuses):
                break
            time.sleep(0.3)
        log = (settings.data_dir.parent / "worker.log").read_text(errors="replace")
        assert statuses == [DatasetJobStatus.succeeded] * JOBS, log[-4000:]
        assert held_messages(settings) == {(TRAIN_TASK, run_id) for run_id in run_ids}
    finally:
        if worker is not None:
            stop_worker(worker)
        broker.kill()
        engine.dispose()

    # Read again once the worker stopped: nothing was sent a second time meanwhile.
    log = (settings.data_dir.parent / "worker.log").read_text(errors="replace")
    with Session(make_engine(database_url)) as db:
        for job_id in job_ids:
            job = db.get(DatasetJob, job_id)
            assert job is not None and job.result is not None
            assert job.resent_at is not None
            assert (job.result["records_imported"], job.result["prompts_created"]) == (1, 1)
        for run_id in run_ids:
            run = db.get(Run, run_id)
            assert run is not None
            assert (run.status, run.attempts) == (RunStatus.queued, 0)
            assert run.resent_at is not None
    for job_id in job_ids:
        assert log.count(f"dataset job {job_id}: queued, and the broker had lost its message") == 1
    for run_id in run_ids:
        assert log.count(f"run {run_id}: queued, and the broker had lost its message") == 1
