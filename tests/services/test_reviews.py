"""Reviews of labels: a rejection needs a reason (the service and the database both refuse
one without), a rejected label leaves snapshots unless asked for, and is counted per labeler."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Comparison, LabelReview, Pair, ReviewVerdict, Role, Task, User
from app.models.base import utcnow
from app.schemas.reviews import ReviewCreate
from app.schemas.snapshots import SnapshotFilters
from app.services import reviews
from app.services.review_queue import ReviewThresholds, review_queue
from app.services.snapshots.filters import label_conditions
from app.services.task_view import task_view
from tests.conftest import make_user
from tests.factories import judge_task, make_comparison_tasks, make_project, make_queue


@pytest.fixture
def three_judged(db: Session) -> tuple[Task, list[int], list[User]]:
    project = make_project(db)
    queue = make_queue(db, project, overlap=3)
    task = make_comparison_tasks(db, queue, project, 1, responses_each=3)[0]
    labelers = [make_user(db, f"judge{index}", Role.labeler) for index in range(3)]
    ids = sorted(response.response_id for response in task_responses(db, task))
    comparisons = [
        judge_task(db, queue, labelers[0], ids),
        judge_task(db, queue, labelers[1], ids),
        judge_task(db, queue, labelers[2], list(reversed(ids)), seconds=3),
    ]
    return task, comparisons, labelers


def task_responses(db: Session, task: Task) -> list:
    from app.models import TaskResponse

    return list(db.scalars(select(TaskResponse).where(TaskResponse.task_id == task.id)))


def snapshot_pair_comparisons(db: Session, project_id: int, **filters: object) -> list[int]:
    from app.models import Prompt

    query = (
        select(Pair.comparison_id)
        .join(Comparison, Comparison.id == Pair.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .outerjoin(Task, Task.id == Comparison.task_id)
        .where(*label_conditions(Comparison, project_id, SnapshotFilters(**filters)))
        .distinct()
        .order_by(Pair.comparison_id)
    )
    return list(db.scalars(query))


def test_a_rejection_without_a_reason_is_refused_and_stores_nothing(
    db: Session, admin: User, three_judged: tuple[Task, list[int], list[User]]
) -> None:
    _, comparisons, _ = three_judged
    with pytest.raises(InvalidInput) as raised:
        reviews.review_comparison(
            db, comparisons[0], admin, ReviewCreate(verdict="rejected", reason=" \n ")
        )
    assert raised.value.field == "reason"
    assert db.scalars(select(LabelReview)).all() == []


def test_the_database_refuses_a_rejection_without_a_reason(
    db: Session, admin: User, three_judged: tuple[Task, list[int], list[User]]
) -> None:
    _, comparisons, _ = three_judged
    db.add(
        LabelReview(
            comparison_id=comparisons[0],
            verdict=ReviewVerdict.rejected,
            reason="   ",
            reviewer_id=admin.id,
            reviewed_at=utcnow(),
        )
    )
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_the_database_refuses_a_review_of_no_label(db: Session, admin: User) -> None:
    db.add(LabelReview(verdict=ReviewVerdict.accepted, reason="", reviewer_id=admin.id))
    with pytest.raises(IntegrityError):
        db.flush()
    db.rollback()


def test_a_rejected_label_leaves_snapshots_unless_included(
    db: Session, admin: User, three_judged: tuple[Task, list[int], list[User]]
) -> None:
    task, comparisons, labelers = three_judged
    project_id = task_view(db, task.id).project.id
    assert snapshot_pair_comparisons(db, project_id) == comparisons
    review = reviews.review_comparison(
        db, comparisons[2], admin, ReviewCreate(verdict="rejected", reason="ranked backwards")
    )
    assert (review.verdict, review.reason, review.reviewer_id) == (
        ReviewVerdict.rejected,
        "ranked backwards",
        admin.id,
    )
    assert snapshot_pair_comparisons(db, project_id) == comparisons[:2]
    assert snapshot_pair_comparisons(db, project_id, include_rejected=True) == comparisons
    # Kept, and seen by the labeler with the reason; counted in their quality figures.
    assert db.get(Comparison, comparisons[2]) is not None
    rejected = reviews.rejected_labels_of(db, labelers[2].id)
    assert [(label.kind, label.label_id, label.reason) for label in rejected] == [
        ("comparison", comparisons[2], "ranked backwards")
    ]
    assert reviews.rejected_counts(db) == {labelers[2].id: 1}
    # Accepting it again takes the rejection back: one review row per label.
    reviews.review_comparison(db, comparisons[2], admin, ReviewCreate(verdict="accepted"))
    assert snapshot_pair_comparisons(db, project_id) == comparisons
    assert len(db.scalars(select(LabelReview)).all()) == 1


def test_the_task_view_lines_up_every_judgement_and_pair(
    db: Session, three_judged: tuple[Task, list[int], list[User]]
) -> None:
    task, comparisons, _ = three_judged
    view = task_view(db, task.id)
    assert [j.comparison.id for j in view.judgements] == comparisons
    assert [j.labeler for j in view.judgements] == ["judge0", "judge1", "judge2"]
    ids = [response.id for response in view.responses]
    # Two labelers agree on every pair, the third reverses all: 1 agreeing of 3 labeler pairs.
    assert [(p.labelers, p.agreeing_pairs, p.labeler_pairs) for p in view.pairs] == [(3, 1, 3)] * 3
    assert view.consensus is not None
    assert view.consensus.ranking == [[ids[0]], [ids[1]], [ids[2]]]


def test_the_review_queue_picks_low_agreement_and_fast_labels(
    db: Session, three_judged: tuple[Task, list[int], list[User]], admin: User
) -> None:
    task, comparisons, _ = three_judged
    project_id = task_view(db, task.id).project.id
    picked = review_queue(db, project_id).items
    assert [(item.comparison_id, item.reasons) for item in picked] == [
        (comparisons[0], ["low agreement"]),
        (comparisons[1], ["low agreement"]),
        (comparisons[2], ["low agreement", "fast"]),
    ]
    reviews.review_comparison(db, comparisons[0], admin, ReviewCreate(verdict="accepted"))
    picked = review_queue(db, project_id, ReviewThresholds(agreement_below=0.2)).items
    assert [item.comparison_id for item in picked] == [comparisons[2]]


def test_send_back_asks_for_one_more_label(
    db: Session, three_judged: tuple[Task, list[int], list[User]]
) -> None:
    task, _, _ = three_judged
    assert reviews.send_back(db, task.id).overlap == 4
    task.retired_at = utcnow()
    db.commit()
    with pytest.raises(Conflict):
        reviews.send_back(db, task.id)
    assert db.get(Task, task.id).overlap == 4
    with pytest.raises(NotFound):
        reviews.send_back(db, 10**12)
