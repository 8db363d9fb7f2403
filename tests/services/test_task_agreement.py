"""Each comparison task's stored pairwise agreement: the agreement report's figure
(pairwise_agreement_by per task), kept by every submit and filled by the migration's backfill,
on hand-worked tasks with ties, a labeler's repeated judgement, an "all unacceptable" and an
imported comparison."""

from __future__ import annotations

import importlib.util
import random
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.models import (
    Comparison,
    ComparisonItem,
    LabelReview,
    LabelSource,
    ReviewVerdict,
    Role,
    Task,
    TaskAgreement,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, ItemJudgement
from app.services import assignments
from app.services.agreement.loading import load_ratings
from app.services.agreement.metrics import pairwise_agreement_by
from app.services.agreement.ratings import Ratings
from app.services.task_agreement import record_task_agreement
from tests.conftest import make_user
from tests.factories import (
    judge_task,
    make_comparison_tasks,
    make_project,
    make_queue,
)

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
T1 = datetime(2026, 5, 2, 9, tzinfo=UTC)
MIGRATION = next(
    Path(__file__).parents[2].glob("migrations/versions/*_keep_each_comparison_tasks_agreement.py")
)


def backfill_sql() -> str:
    spec = importlib.util.spec_from_file_location("task_agreement_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL)


def add_judgement(
    db: Session,
    task: Task,
    labeler: User | None,
    ranks: list[int | None],
    *,
    at: datetime = T0,
    all_unacceptable: bool = False,
) -> Comparison:
    """A comparison of the task's responses (in id order) with these ranks."""
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=LabelSource.labeler if labeler else LabelSource.imported,
        all_unacceptable=all_unacceptable,
        created_at=at,
    )
    db.add(comparison)
    db.flush()
    for response_id, rank in zip(response_ids(db, task), ranks, strict=True):
        db.add(ComparisonItem(comparison_id=comparison.id, response_id=response_id, rank=rank))
    db.flush()
    return comparison


def response_ids(db: Session, task: Task) -> list[int]:
    return sorted(
        db.scalars(select(TaskResponse.response_id).where(TaskResponse.task_id == task.id))
    )


def stored(db: Session, task: Task) -> tuple[int, int, int, float | None] | None:
    # Read afresh: the service writes with a Core UPDATE, which the session does not track.
    row = db.execute(
        select(
            TaskAgreement.agreeing,
            TaskAgreement.labeler_pairs,
            TaskAgreement.response_pairs,
            TaskAgreement.rate,
        ).where(TaskAgreement.task_id == task.id)
    ).one_or_none()
    return None if row is None else tuple(row)  # type: ignore[return-value]


def report_figures(db: Session, project_id: int) -> dict[int, tuple[int, int, int, float | None]]:
    """The agreement report's per-task figures, computed as it computes them."""
    ratings = load_ratings(db, project_ids=[project_id])
    by_task = pairwise_agreement_by(
        Ratings(
            ratings.task,
            ratings.labeler,
            ratings.response,
            ratings.rank,
            ratings.score,
            {"task": ratings.task},
        ),
        "task",
    )
    return {
        task: (found.agreeing, found.labeler_pairs, found.response_pairs, found.rate)
        for task, found in by_task.items()
    }


@pytest.fixture
def tasks(db: Session) -> tuple[int, list[Task]]:
    """Hand-worked tasks (responses in id order r1 < r2 < r3):

    A: ada and bob rank r1 > r2 > r3, cy the reverse. Each of the 3 response pairs is ordered
       by all three: 3 labeler pairs each, of which ada-bob agree: 3 of 9.
    B: ada ties r1 and r2 above r3; bob r1 > r2 > r3. (r1, r2) is ordered by bob alone: no
       labeler pair; (r1, r3) and (r2, r3) agree: 2 of 2. cy's "all unacceptable" and an
       import do not count.
    C: ada alone: no labeler pair, no figure.
    """
    project = make_project(db)
    queue = make_queue(db, project, overlap=3)
    task_a, task_b, task_c = make_comparison_tasks(db, queue, project, 3, responses_each=3)
    ada, bob, cy = (make_user(db, name, Role.labeler) for name in ("ada", "bob", "cy"))
    add_judgement(db, task_a, ada, [1, 2, 3])
    add_judgement(db, task_a, bob, [1, 2, 3])
    add_judgement(db, task_a, cy, [3, 2, 1])
    add_judgement(db, task_b, ada, [1, 1, 2])
    add_judgement(db, task_b, bob, [1, 2, 3])
    add_judgement(db, task_b, cy, [None, None, None], all_unacceptable=True)
    add_judgement(db, task_b, None, [3, 2, 1])
    add_judgement(db, task_c, ada, [2, 1, 3])
    for task in (task_a, task_b, task_c):
        record_task_agreement(db, task.id)
    db.commit()
    return project.id, [task_a, task_b, task_c]


def test_the_stored_figure_is_the_reports_on_hand_worked_tasks(
    db: Session, tasks: tuple[int, list[Task]]
) -> None:
    project_id, (task_a, task_b, task_c) = tasks
    assert stored(db, task_a) == (3, 9, 3, 1 / 3)
    assert stored(db, task_b) == (2, 2, 2, 1.0)
    assert stored(db, task_c) == (0, 0, 0, None)
    assert report_figures(db, project_id) == {
        task_a.id: (3, 9, 3, 1 / 3),
        task_b.id: (2, 2, 2, 1.0),
        task_c.id: (0, 0, 0, None),
    }


def test_only_a_labelers_latest_judgement_counts(
    db: Session, tasks: tuple[int, list[Task]]
) -> None:
    project_id, (_, task_b, _) = tasks
    ada = db.scalar(select(User).where(User.username == "ada"))
    # ada judges B again, later (a re-queue under a new guideline): r3 > r1 > r2. Against bob
    # (r1 > r2 > r3): (r1, r2) agrees, (r1, r3) and (r2, r3) do not: 1 of 3.
    add_judgement(db, task_b, ada, [2, 3, 1], at=T1)
    record_task_agreement(db, task_b.id)
    db.commit()
    assert stored(db, task_b) == (1, 3, 3, 1 / 3)
    assert report_figures(db, project_id)[task_b.id] == (1, 3, 3, 1 / 3)


def test_a_rejected_label_still_counts(
    db: Session, tasks: tuple[int, list[Task]], admin: User
) -> None:
    """As in the agreement report: the disagreement happened; the review is beside it."""
    project_id, (task_a, _, _) = tasks
    cy_label = db.scalar(
        select(Comparison.id)
        .join(User, User.id == Comparison.labeler_id)
        .where(Comparison.task_id == task_a.id, User.username == "cy")
    )
    db.add(
        LabelReview(
            comparison_id=cy_label,
            verdict=ReviewVerdict.rejected,
            reason="reversed",
            reviewer_id=admin.id,
            reviewed_at=utcnow(),
        )
    )
    record_task_agreement(db, task_a.id)
    db.commit()
    assert stored(db, task_a) == (3, 9, 3, 1 / 3)
    assert report_figures(db, project_id)[task_a.id] == (3, 9, 3, 1 / 3)


def test_the_migrations_backfill_gives_the_same_rows(
    db: Session, tasks: tuple[int, list[Task]]
) -> None:
    _, (task_a, task_b, task_c) = tasks
    ada = db.scalar(select(User).where(User.username == "ada"))
    add_judgement(db, task_b, ada, [2, 3, 1], at=T1)
    record_task_agreement(db, task_b.id)
    before = {task.id: stored(db, task) for task in (task_a, task_b, task_c)}
    db.execute(delete(TaskAgreement))
    db.execute(text(backfill_sql()))
    db.expire_all()
    assert {task.id: stored(db, task) for task in (task_a, task_b, task_c)} == before
    assert before[task_b.id] == (1, 3, 3, 1 / 3)


def test_each_submit_keeps_the_figure(db: Session) -> None:
    project = make_project(db)
    queue = make_queue(db, project, overlap=3)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
    ids = response_ids(db, task)
    labelers = [make_user(db, f"judge{index}", Role.labeler) for index in range(3)]
    judge_task(db, queue, labelers[0], ids)
    assert stored(db, task) == (0, 0, 0, None)
    judge_task(db, queue, labelers[1], ids)
    assert stored(db, task) == (3, 3, 3, 1.0)
    judge_task(db, queue, labelers[2], list(reversed(ids)))
    assert stored(db, task) == (3, 9, 3, 1 / 3)
    assert report_figures(db, project.id) == {task.id: (3, 9, 3, 1 / 3)}


@pytest.mark.slow
def test_labelers_submitting_one_task_at_once_leave_the_right_figure(own_database: str) -> None:
    """The row lock taken before reading the task's comparisons: without it, two submits at
    once each compute without the other's comparison, and the later write loses one."""
    labelers = 6
    engine = make_engine(own_database, pool_size=labelers + 2, max_overflow=0)
    sessions = session_factory(engine)
    with sessions() as db:
        project = make_project(db)
        queue = make_queue(db, project, overlap=labelers, max_overlap=labelers)
        (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
        leased = []
        for index in range(labelers):
            labeler = make_user(db, f"judge{index}", Role.labeler)
            assignment = assignments.lease_next_task(db, queue.id, labeler)
            assert assignment is not None
            leased.append((assignment.id, labeler.id, assignment.response_order or []))
        project_id, task_id = project.id, task.id

    errors: list[BaseException] = []
    start = threading.Barrier(labelers)

    def submit(assignment_id: int, labeler_id: int, order: list[int]) -> None:
        try:
            with sessions() as db:
                labeler = db.get(User, labeler_id)
                assert labeler is not None
                db.rollback()
                ranks = list(range(1, len(order) + 1))
                random.Random(labeler_id).shuffle(ranks)
                data = ComparisonSubmit(
                    items=[
                        ItemJudgement(response_id=response, rank=rank, score=8 - rank)
                        for response, rank in zip(order, ranks, strict=True)
                    ]
                )
                start.wait()
                assignments.submit_comparison(db, assignment_id, labeler, data)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=submit, args=args) for args in leased]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with sessions() as db:
        figures = report_figures(db, project_id)
        assert figures[task_id][1] == 3 * labelers * (labelers - 1) // 2
        assert stored(db, db.get(Task, task_id)) == figures[task_id]  # type: ignore[arg-type]
    engine.dispose()
