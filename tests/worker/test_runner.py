"""The runner around a job: what lands in the run row when the job succeeds, raises, is
cancelled, or outlives its claim. Job functions are stand-ins here (the real ones are tested in
test_job_*.py and end to end in test_training_worker.py), so these run in a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import Model, ModelRole, Run, RunStatus, Snapshot
from app.services.resending import resend_lost_messages
from app.services.runs.queueing import TRAIN_TASK, enqueue_run
from app.settings import Settings
from tests.factories import make_project
from tests.training_factories import make_model, make_run, make_snapshot
from worker.celery_app import celery_for
from worker.jobs.context import JobContext, JobResult
from worker.runner import execute_run

WORKER = "test-worker@host"


@pytest.fixture
def engine(own_database: str) -> Iterator[Engine]:
    engine = make_engine(own_database)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, own_database: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=own_database,
        secret_key="test-secret-key-" + "x" * 32,
        run_heartbeat_seconds=0.05,
    )


@pytest.fixture
def run_id(sessions: sessionmaker[Session], settings: Settings) -> int:
    with sessions() as db:
        project = make_project(db)
        base = make_model(db, settings, "base")
        snapshot = make_snapshot(db, settings, project)
        return make_run(db, project, base, snapshot).id


def execute(run_id: int, sessions: sessionmaker[Session], settings: Settings, job) -> str:
    return execute_run(
        run_id, WORKER, settings=settings, sessions=sessions, jobs={"sft": job}, device="cpu"
    )


def test_a_successful_job_gets_its_context_and_registers_its_model(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    seen: list[JobContext] = []

    def job(ctx: JobContext) -> JobResult:
        seen.append(ctx)
        ctx.report(1, {"loss": 3.0}, 0.5)
        ctx.report(2, {"loss": 1.5}, 1.0)
        ctx.output_dir.mkdir(parents=True)
        return JobResult({"eval_loss": 1.75}, ctx.output_dir, "policy", {"bf16": False})

    assert execute(run_id, sessions, settings, job) == "succeeded"
    (ctx,) = seen
    assert ctx.base_model_path == settings.data_dir / "models" / "base"
    assert ctx.snapshot_path == settings.data_dir / f"snapshots/{ctx.snapshot_path.name}"
    assert ctx.output_dir == settings.data_dir / "runs" / str(run_id) / "model"
    assert ctx.checkpoint_dir == settings.data_dir / "runs" / str(run_id) / "checkpoints"
    assert (ctx.resume_from, ctx.device, ctx.reward_model_path) == (None, "cpu", None)
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert run.status == RunStatus.succeeded
        assert run.metrics == {
            "train": {"loss": 1.5, "step": 2},
            "eval": {"eval_loss": 1.75},
        }
        model = db.get(Model, run.output_model_id)
        assert model is not None
        assert (model.role, model.path) == (ModelRole.policy, f"runs/{run_id}/model")


def test_a_job_that_raises_leaves_the_error_and_traceback(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    def job(ctx: JobContext) -> JobResult:
        raise RuntimeError("CUDA out of memory")

    assert execute(run_id, sessions, settings, job) == "failed"
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert (run.status, run.error) == (RunStatus.failed, "RuntimeError: CUDA out of memory")
        assert run.traceback is not None
        assert 'raise RuntimeError("CUDA out of memory")' in run.traceback


def test_a_second_delivery_of_the_same_run_does_nothing(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    calls: list[int] = []

    def job(ctx: JobContext) -> JobResult:
        calls.append(ctx.run_id)
        return JobResult({}, ctx.output_dir, "policy")

    assert execute(run_id, sessions, settings, job) == "succeeded"
    assert execute(run_id, sessions, settings, job) == "skipped"
    assert calls == [run_id]


def test_a_run_whose_message_was_lost_is_sent_again_and_runs_once(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """make_run sends no message: to the broker it is lost. Sent again, and then the first
    message back as well (the worst case): the worker takes both, the job runs once."""
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        later = run.created_at + timedelta(minutes=10)
        resent = resend_lost_messages(db, settings, older_than=timedelta(minutes=5), now=later)
    assert resent.runs == [run_id]
    enqueue_run(settings, run_id)

    delivered: list[tuple[str, int]] = []
    with celery_for(settings).connection_for_read() as connection:
        while (message := connection.default_channel.basic_get("gpu", no_ack=True)) is not None:
            args, _kwargs, _embed = message.decode()
            delivered.append((message.headers["task"], *args))
    assert delivered == [(TRAIN_TASK, run_id), (TRAIN_TASK, run_id)]

    calls: list[int] = []

    def job(ctx: JobContext) -> JobResult:
        calls.append(ctx.run_id)
        return JobResult({}, ctx.output_dir, "policy")

    outcomes = [execute(job_id, sessions, settings, job) for _task, job_id in delivered]
    assert outcomes == ["succeeded", "skipped"]
    assert calls == [run_id]


def test_cancel_reaches_the_job_through_the_heartbeat(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    started = threading.Event()

    def job(ctx: JobContext) -> JobResult:
        started.set()
        deadline = time.monotonic() + 20
        while not ctx.should_stop():
            assert time.monotonic() < deadline, "the cancel never reached the job"
            time.sleep(0.01)
        return JobResult({}, ctx.output_dir, "policy", stopped=True)

    outcome: list[str] = []
    thread = threading.Thread(
        target=lambda: outcome.append(execute(run_id, sessions, settings, job))
    )
    thread.start()
    assert started.wait(20)
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        run.cancel_requested = True
        db.commit()
    thread.join(30)
    assert outcome == ["cancelled"]
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert (run.status, run.output_model_id) == (RunStatus.cancelled, None)


def test_a_run_taken_away_mid_job_drops_the_result(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    def job(ctx: JobContext) -> JobResult:
        # The reaper decided this worker was dead and another worker took the run over.
        with sessions() as db:
            run = db.get(Run, ctx.run_id)
            assert run is not None
            run.worker_name = "another@host"
            db.commit()
        deadline = time.monotonic() + 20
        while not ctx.should_stop():
            assert time.monotonic() < deadline, "losing the run never stopped the job"
            time.sleep(0.01)
        return JobResult({"eval_loss": 9.0}, ctx.output_dir, "policy")

    assert execute(run_id, sessions, settings, job) == "lost"
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert (run.status, run.worker_name, run.output_model_id) == (
            RunStatus.running,
            "another@host",
            None,
        )


def test_a_snapshot_folder_missing_on_the_worker_fails_the_run_before_any_job_starts(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        folder = settings.data_dir / db.get(Snapshot, run.snapshot_id).path
    folder.rmdir()
    calls: list[int] = []

    def job(ctx: JobContext) -> JobResult:
        calls.append(ctx.run_id)
        return JobResult({}, ctx.output_dir, "policy")

    assert execute(run_id, sessions, settings, job) == "failed"
    assert calls == []
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert run.error == (
            f"snapshot {run.snapshot_id}'s folder {folder} is not on this worker: web app and "
            "workers must share the data folder"
        )


def test_a_worker_without_the_train_extra_says_how_to_get_it(
    run_id: int, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """A web-only install (`pip install .`) has no torch: its worker fails the run with the way
    out instead of a bare ModuleNotFoundError."""

    def job(ctx: JobContext) -> JobResult:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    assert execute(run_id, sessions, settings, job) == "failed"
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        assert run.error == (
            "this worker cannot train: torch is not installed. Install Smiley with the `train` "
            "extra on GPU workers (pip install -e '.[train]'), then resume the run"
        )
