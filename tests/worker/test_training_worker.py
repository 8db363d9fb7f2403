"""Training end to end through a real Celery worker process: a run launched like the API
launches it, trained from a real snapshot of imported labels, registered as a model; and a
worker killed mid-run, reaped by another worker's heartbeat, resumed from its last complete
checkpoint, finishing without starting over. Embedded broker with SQLite; Redis with
PostgreSQL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import Model, ModelRole, Role, Run, RunMetric, RunStatus, User
from app.schemas.training import RunCreate
from app.services import runs
from app.settings import Settings
from tests.conftest import REDIS_URL, make_user, redis_db, unavailable
from tests.factories import make_project
from tests.worker.fake_hub import serve_hub
from tests.worker.training_worker import (
    complete_checkpoints,
    group_members,
    run_state,
    sft_snapshot,
    start_worker,
    tiny_base_model,
    wait_for,
)

# One group, started early (tests/conftest.py): the slowest tests after the loop's and RL's.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-e2e")]

# A Redis database of these tests' own, emptied first: no other test's worker takes our runs.
REDIS_DB = redis_db(1)


@pytest.fixture
def settings(tmp_path: Path, own_database: str) -> Settings:
    broker = "filesystem://"
    if own_database.startswith("postgresql"):
        broker = f"{REDIS_URL}/{REDIS_DB}"
        try:
            redis.Redis.from_url(broker).flushdb()
        except redis.RedisError as error:
            unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=own_database,
        broker_url=broker,
        secret_key="test-secret-key-" + "x" * 32,
    )


@pytest.fixture
def sessions(own_database: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = make_engine(own_database)
    yield session_factory(engine)
    engine.dispose()


def launch_sft(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path, hyperparameters: dict
) -> int:
    settings.ensure_data_dir()
    with sessions() as db:
        researcher = make_user(db, "rhea", Role.researcher)
        project = make_project(db)
        db.commit()
        base = tiny_base_model(db, settings, project, tiny)
        snapshot = sft_snapshot(db, settings, project, researcher)
        run = runs.create_run(
            db,
            settings,
            project.id,
            RunCreate(
                kind="sft",
                base_model_id=base.id,
                snapshot_id=snapshot.id,
                hyperparameters=hyperparameters,
            ),
            acting=researcher,
        )
        return run.id


def losses(sessions: sessionmaker[Session], run_id: int) -> list[tuple[int, float]]:
    with sessions() as db:
        rows = db.scalars(
            select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.id)
        )
        return [(row.step, row.values["loss"]) for row in rows if "loss" in row.values]


# One database is enough: what is new here is the download, not the run's bookkeeping.
@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)
def test_an_sft_run_from_a_hub_name_downloads_its_base_once_and_trains(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    settings = settings.model_copy(update={"allow_hub_models": True})
    settings.ensure_data_dir()
    with sessions() as db:
        researcher = make_user(db, "rhea", Role.researcher)
        project = make_project(db)
        db.commit()
        snapshot = sft_snapshot(db, settings, project, researcher)
        run_ids = [
            runs.create_run(
                db,
                settings,
                project.id,
                RunCreate(
                    kind="sft",
                    base_model_ref="smiley/tiny",
                    snapshot_id=snapshot.id,
                    hyperparameters={"max_steps": 4, "batch_size": 4, "logging_steps": 2},
                ),
                acting=researcher,
            ).id
            for _ in range(2)
        ]
    with serve_hub({"smiley/tiny": tiny}) as hub:
        # The worker finds the hub where huggingface_hub looks: HF_ENDPOINT.
        worker = start_worker(settings, "e2e-hub@%h", HF_ENDPOINT=hub.url)
        try:
            wait_for(
                lambda: all(
                    run_state(sessions, run_id).status in (RunStatus.succeeded, RunStatus.failed)
                    for run_id in run_ids
                ),
                300,
                "both hub runs to finish",
                worker,
            )
        finally:
            worker.stop()
    first, second = (run_state(sessions, run_id) for run_id in run_ids)
    assert first.status == second.status == RunStatus.succeeded, (first.error, second.error)
    # The second run found the model in the cache: every file was fetched once.
    assert set(hub.downloads.values()) == {1}
    size = sum(path.stat().st_size for path in tiny.iterdir())
    assert first.artifacts["downloads"]["smiley/tiny"]["state"] == "done"
    assert first.artifacts["downloads"]["smiley/tiny"]["bytes_done"] == size
    assert second.artifacts["downloads"]["smiley/tiny"]["state"] == "cached"
    assert [step for step, _ in losses(sessions, second.id)] == [2, 4]
    folder = settings.data_dir / f"runs/{second.id}/model"
    assert (folder / "config.json").is_file()
    assert list(folder.glob("*.safetensors"))


# SQLite and the embedded broker (a plain `smiley up`): the same on PostgreSQL and Redis, with a
# process group besides, is the next test.
@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)
def test_a_killed_worker_leaves_a_resumable_run_that_finishes_without_starting_over(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    run_id = launch_sft(
        sessions,
        settings,
        tiny,
        {
            "max_steps": 80,
            "batch_size": 4,
            "logging_steps": 1,
            "save_steps": 5,
            "learning_rate": 5e-4,
        },
    )
    first = start_worker(settings, "doomed@%h")
    try:
        wait_for(
            lambda: bool(complete_checkpoints(settings, run_id)),
            300,
            "a complete checkpoint",
            first,
        )
    finally:
        first.kill()
    killed_at = max(step for step, _ in losses(sessions, run_id))
    assert run_state(sessions, run_id).status == RunStatus.running
    assert killed_at < 80, "the run finished before the worker was killed"

    # A second worker's heartbeat reaps the silent run; then a researcher resumes it.
    second = start_worker(settings, "rescuer@%h", SMILEY_RUN_STALE_SECONDS="3")
    try:
        wait_for(
            lambda: run_state(sessions, run_id).status == RunStatus.failed,
            120,
            "the reaper to mark the run",
            second,
        )
        lost = run_state(sessions, run_id)
        assert lost.error is not None and lost.error.startswith("worker lost: doomed@")
        checkpoint = max(complete_checkpoints(settings, run_id))
        with sessions() as db:
            creator = db.get(User, run.created_by_id) if (run := db.get(Run, run_id)) else None
            assert creator is not None
            runs.resume_run(db, settings, run_id, acting=creator)
        wait_for(
            lambda: run_state(sessions, run_id).status in (RunStatus.succeeded, RunStatus.failed),
            420,
            "the resumed run to finish",
            second,
        )
    finally:
        second.stop()
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.succeeded, (run.error, run.traceback)
    assert run.attempts == 2
    assert run.artifacts["worker_lost"] is True
    assert run.artifacts["previous_errors"] == [lost.error]
    steps = [step for step, _ in losses(sessions, run_id)]
    # The second attempt began after the newest complete checkpoint, not at step 1.
    assert steps == list(range(1, killed_at + 1)) + list(range(checkpoint + 1, 81))
    # Finished by the worker that resumed it, which registered its model (a single-process
    # run through a real worker; every kind as a process group is in test_launch.py).
    assert run.progress == 1.0 and re.fullmatch(r"rescuer@.+", run.worker_name or "")
    assert {"eval_loss", "perplexity", "train_loss"} <= set(run.metrics["eval"])
    assert run.artifacts["settings"]["learning_rate"] == 5e-4
    with sessions() as db:
        model = db.get(Model, run.output_model_id)
        assert model is not None
        assert (model.name, model.role, model.base_model_id) == (
            f"run-{run_id}-sft",
            ModelRole.policy,
            run.base_model_id,
        )
    folder = settings.data_dir / f"runs/{run_id}/model"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))


# PostgreSQL: where the metrics a killed runner had not forwarded were found missing.
@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
def test_a_killed_worker_takes_its_process_group_with_it_and_the_run_resumes_on_two_processes(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    run_id = launch_sft(
        sessions,
        settings,
        tiny,
        {"max_steps": 60, "batch_size": 4, "logging_steps": 1, "save_steps": 5, "processes": 2},
    )
    launch_folder = settings.data_dir / f"runs/{run_id}/launch"
    first = start_worker(settings, "doomed-group@%h")
    try:
        wait_for(
            lambda: bool(complete_checkpoints(settings, run_id)),
            300,
            "a complete checkpoint",
            first,
        )
        members = group_members(launch_folder)
        # The launcher and its two ranks, in a session of their own (not the worker's).
        assert len(members) == 3, members
        assert {os.getsid(member.pid) for member in members} != {os.getsid(first.process.pid)}
    finally:
        first.kill()
    # Nothing of the group outlives the worker: the kernel ends each with its parent.
    _gone, alive = psutil.wait_procs(members, timeout=15)
    assert alive == []
    # The runner forwards rank 0's reports every half second: it may die a step or two behind.
    killed_at = max((step for step, _ in losses(sessions, run_id)), default=0)
    assert killed_at < 60, "the run finished before the worker was killed"

    second = start_worker(settings, "rescuer-group@%h", SMILEY_RUN_STALE_SECONDS="3")
    try:
        wait_for(
            lambda: run_state(sessions, run_id).status == RunStatus.failed,
            120,
            "the reaper to mark the run",
            second,
        )
        checkpoint = max(complete_checkpoints(settings, run_id))
        with sessions() as db:
            creator = db.get(User, run.created_by_id) if (run := db.get(Run, run_id)) else None
            assert creator is not None
            runs.resume_run(db, settings, run_id, acting=creator)
        wait_for(
            lambda: run_state(sessions, run_id).status in (RunStatus.succeeded, RunStatus.failed),
            420,
            "the resumed run to finish",
            second,
        )
    finally:
        second.stop()
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.succeeded, (run.error, run.traceback)
    assert run.attempts == 2
    assert run.artifacts["settings"]["processes"] == 2
    steps = [step for step, _ in losses(sessions, run_id)]
    # Rank 0 alone reported; the second attempt first forwarded what the killed runner had not
    # (up to its checkpoint), and its group began after the newest complete checkpoint.
    assert steps == list(range(1, max(killed_at, checkpoint) + 1)) + list(range(checkpoint + 1, 61))
    assert group_members(launch_folder) == []
