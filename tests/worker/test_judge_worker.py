"""A judge run through a real Celery worker process: a reward model (the tiny model with a
seeded score head) labels a comparison queue, and its labels are stored as AI labels that
hold no place of the tasks' overlap."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    ModelRole,
    Pair,
    ResponseScore,
    Role,
    RunStatus,
    Task,
)
from app.schemas.training import RunCreate
from app.services import runs
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.worker.judge_support import tiny_reward_model
from tests.worker.test_training_worker import run_state, sessions, settings  # noqa: F401
from tests.worker.training_worker import start_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("training-e2e")]


def test_a_judge_run_labels_a_queue_on_a_worker(
    sessions: sessionmaker[Session],  # noqa: F811
    settings: Settings,  # noqa: F811
    tiny: Path,
    own_database: str,
) -> None:
    if own_database.startswith("postgresql"):
        # A worker's start costs a minute of CI; the Redis path is the SFT end-to-end test's.
        pytest.skip("one database is enough for the judge's end-to-end run")
    settings.ensure_data_dir()
    with sessions() as db:
        researcher = make_user(db, "rhea", Role.researcher)
        project = make_project(db)
        queue = make_queue(db, project, overlap=2, max_overlap=2)
        tasks = make_comparison_tasks(db, queue, project, 3, responses_each=3)
        folder = tiny_reward_model(tiny, settings.data_dir / "models" / "rm")
        judge = Model(
            name="tiny-rm",
            role=ModelRole.reward,
            path=str(folder.relative_to(settings.data_dir)),
            project_id=project.id,
        )
        db.add(judge)
        db.commit()
        run_id = runs.create_run(
            db, settings, project.id,
            RunCreate(kind="judge", base_model_id=judge.id,
                      hyperparameters={"queue_id": queue.id}),
            acting=researcher,
        ).id  # fmt: skip
        judge_id, task_ids = judge.id, [task.id for task in tasks]
    worker = start_worker(settings, "e2e-judge@%h")
    try:
        wait_for(
            lambda: run_state(sessions, run_id).status in (RunStatus.succeeded, RunStatus.failed),
            300,
            "the judge run to finish",
            worker,
        )
    finally:
        worker.stop()
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.succeeded, (run.error, run.traceback, worker.output()[-3000:])
    assert run.metrics["eval"] == {"labels": 3, "unparsed": 0, "tasks": 3}
    with sessions() as db:
        labels = list(db.scalars(select(Comparison).order_by(Comparison.task_id)))
        assert [(c.task_id, c.source, c.model_id, c.run_id, c.labeler_id) for c in labels] == [
            (task_id, LabelSource.ai, judge_id, run_id, None) for task_id in task_ids
        ]
        for label in labels:
            items = db.execute(
                select(ComparisonItem.rank, ComparisonItem.score).where(
                    ComparisonItem.comparison_id == label.id
                )
            ).all()
            assert len(items) == 3 and all(1 <= score <= 7 for _, score in items)
            ranks = [rank for rank, _ in items]
            pairs = db.scalars(select(Pair.id).where(Pair.comparison_id == label.id)).all()
            # Every two responses of different ranks give a pair; ties give none.
            assert len(pairs) == sum(a != b for a, b in combinations(ranks, 2))
        scores = db.scalars(select(ResponseScore.model_id)).all()
        assert scores == [judge_id] * 9
        # The judge held no place: every task still waits for its two people.
        held = db.execute(select(Task.overlap, Task.held_slots).where(Task.id.in_(task_ids))).all()
        assert [tuple(row) for row in held] == [(2, 0)] * 3
