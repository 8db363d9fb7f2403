"""Leasing and submitting on both backends (locking: test_lease_concurrency.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    Pair,
    QueueKind,
    QueueLabeler,
    Response,
    Role,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, DemonstrationSubmit, SkipSubmit
from app.services import assignments
from tests.conftest import make_user
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_task,
    publish_guideline,
)


def count(db: Session, model: type) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def judge(
    assignment: Assignment, ranks: list[int | None], scores: list[int], **extra: object
) -> ComparisonSubmit:
    order = assignment.response_order or []
    return ComparisonSubmit(
        items=[
            {"response_id": response_id, "rank": rank, "score": score}
            for response_id, rank, score in zip(order, ranks, scores, strict=True)
        ],
        **extra,
    )


@pytest.fixture
def project(db: Session):  # type: ignore[no-untyped-def]
    return make_project(db)


@pytest.fixture
def lena(db: Session) -> User:
    return make_user(db, "lena")


@pytest.fixture
def omar(db: Session) -> User:
    return make_user(db, "omar")


def test_lease_takes_the_highest_priority_task_first(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    low, high = make_comparison_tasks(db, queue, project, 2)
    high.priority = 5
    db.commit()
    first = assignments.lease_next_task(db, queue.id, lena)
    second = assignments.lease_next_task(db, queue.id, lena)
    assert first is not None and second is not None
    assert (first.task_id, second.task_id) == (high.id, low.id)
    assert sorted(first.response_order or []) == sorted(
        db.scalars(select(Response.id).where(Response.prompt_id == high.prompt_id))
    )
    assert first.lease_expires_at - first.leased_at == timedelta(seconds=600)
    assert assignments.lease_next_task(db, queue.id, lena) is None


def test_overlap_one_gives_each_task_to_one_labeler(
    db: Session, project, lena: User, omar: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    tasks = make_comparison_tasks(db, queue, project, 2)
    a = assignments.lease_next_task(db, queue.id, lena)
    b = assignments.lease_next_task(db, queue.id, omar)
    assert a is not None and b is not None
    assert {a.task_id, b.task_id} == {task.id for task in tasks}
    assert assignments.lease_next_task(db, queue.id, omar) is None


def test_overlap_two_gives_the_same_task_to_two_labelers_never_twice_to_one(
    db: Session,
    project,
    lena: User,
    omar: User,  # type: ignore[no-untyped-def]
) -> None:
    queue = make_queue(db, project, overlap=2)
    (task,) = make_comparison_tasks(db, queue, project, 1)
    first = assignments.lease_next_task(db, queue.id, lena)
    assert first is not None and first.task_id == task.id
    assert assignments.lease_next_task(db, queue.id, lena) is None
    second = assignments.lease_next_task(db, queue.id, omar)
    assert second is not None and second.task_id == task.id
    third = make_user(db, "tess")
    assert assignments.lease_next_task(db, queue.id, third) is None


def test_expired_lease_returns_the_task(db: Session, project, lena: User, omar: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    (task,) = make_comparison_tasks(db, queue, project, 1)
    start = utcnow()
    first = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert first is not None
    assert (
        assignments.lease_next_task(db, queue.id, omar, now=start + timedelta(seconds=59)) is None
    )
    later = assignments.lease_next_task(db, queue.id, omar, now=start + timedelta(seconds=61))
    assert later is not None and later.task_id == task.id
    db.refresh(first)
    assert first.status == AssignmentStatus.expired


def test_a_labeler_holds_at_most_max_active_leases(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, max_active_leases=2)
    make_comparison_tasks(db, queue, project, 3)
    assignments.lease_next_task(db, queue.id, lena)
    assignments.lease_next_task(db, queue.id, lena)
    with pytest.raises(Conflict, match="you hold 2 task"):
        assignments.lease_next_task(db, queue.id, lena)
    assert count(db, Assignment) == 2


def test_who_may_lease(db: Session, project, lena: User, omar: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, open_to_all=False)
    make_comparison_tasks(db, queue, project, 1)
    db.add(QueueLabeler(queue_id=queue.id, user_id=omar.id))
    db.commit()
    with pytest.raises(NotFound):
        assignments.lease_next_task(db, queue.id, lena)
    with pytest.raises(NotFound):
        assignments.lease_next_task(db, 987654, lena)
    admin = make_user(db, "boss", Role.admin)
    with pytest.raises(PermissionDenied):
        assignments.lease_next_task(db, queue.id, admin)
    queue.is_paused = True
    db.commit()
    with pytest.raises(Conflict, match="paused"):
        assignments.lease_next_task(db, queue.id, omar)
    assert count(db, Assignment) == 0


def test_submit_comparison_stores_items_and_pairs(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    guideline = publish_guideline(db, project, 1)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1)
    start = utcnow()
    assignment = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert assignment is not None
    done = assignments.submit_comparison(
        db,
        assignment.id,
        lena,
        judge(assignment, [1, 2, 2, 4], [7, 5, 4, 1], idle_seconds=10, comment=" fine "),
        now=start + timedelta(seconds=70),
    )
    # Ranks 1,2,2,4 close to 1,2,2,3; the tie gives no pair: 6 - 1 = 5 pairs.
    assert (done.pairs, done.replayed, done.warnings) == (5, False, ())
    comparison = db.get(Comparison, done.label_id)
    assert comparison is not None
    assert (comparison.time_spent_seconds, comparison.comment) == (60.0, "fine")
    assert comparison.guideline_version_id == guideline.id
    order = assignment.response_order or []
    ranks = dict(
        db.execute(
            select(ComparisonItem.response_id, ComparisonItem.rank).where(
                ComparisonItem.comparison_id == comparison.id
            )
        ).all()
    )
    assert [ranks[response] for response in order] == [1, 2, 2, 3]
    pairs = {
        (p.winner_response_id, p.loser_response_id): p.margin
        for p in db.scalars(select(Pair).where(Pair.comparison_id == comparison.id))
    }
    a, b, c, d = order
    assert pairs == {(a, b): 2, (a, c): 3, (a, d): 6, (b, d): 4, (c, d): 3}
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.submitted


def test_all_unacceptable_is_an_answer_without_pairs(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    done = assignments.submit_comparison(
        db, assignment.id, lena, judge(assignment, [None, None], [1, 2], all_unacceptable=True)
    )
    assert done.pairs == 0
    assert count(db, Pair) == 0
    comparison = db.get(Comparison, done.label_id)
    assert comparison is not None and comparison.all_unacceptable is True


def test_score_rank_disagreement_is_pointed_out_not_fixed(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    first, second = assignment.response_order or []
    done = assignments.submit_comparison(db, assignment.id, lena, judge(assignment, [1, 2], [3, 6]))
    assert done.warnings == (
        f"response {first} is ranked above response {second} but scored lower (3 < 6)",
    )
    assert [(p.winner_response_id, p.margin) for p in db.scalars(select(Pair))] == [(first, -3)]


def test_idempotent_replay_and_double_submit(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    data = judge(assignment, [1, 2], [6, 2], idempotency_key="key-00000001")
    first = assignments.submit_comparison(db, assignment.id, lena, data)
    again = assignments.submit_comparison(db, assignment.id, lena, data)
    assert (again.label_id, again.replayed) == (first.label_id, True)
    with pytest.raises(Conflict, match="is submitted"):
        assignments.submit_comparison(db, assignment.id, lena, judge(assignment, [1, 2], [6, 2]))
    assert (count(db, Comparison), count(db, Pair)) == (1, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "judge exactly the task's responses"),
        ("flag", "unknown flag"),
        ("other", "say what 'other' means"),
    ],
)
def test_bad_comparisons_change_nothing(
    db: Session, project, lena: User, change: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=3)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    items = [
        {"response_id": response_id, "rank": rank, "score": 4}
        for response_id, rank in zip(assignment.response_order or [], [1, 2, 3], strict=True)
    ]
    if change == "missing":
        items[2]["response_id"] = 999_999
    elif change == "flag":
        items[0]["flags"] = ["made_up_flag"]
    else:
        items[0]["flags"] = ["other"]
    with pytest.raises(InvalidInput, match=message):
        assignments.submit_comparison(db, assignment.id, lena, ComparisonSubmit(items=items))
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.active
    assert (count(db, Comparison), count(db, ComparisonItem), count(db, Pair)) == (0, 0, 0)


def test_someone_elses_assignment_is_not_found(
    db: Session, project, lena: User, omar: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    with pytest.raises(NotFound):
        assignments.submit_comparison(db, assignment.id, omar, judge(assignment, [1, 2], [5, 3]))
    with pytest.raises(NotFound):
        assignments.skip_assignment(db, assignment.id, omar, SkipSubmit(reason="broken_task"))
    assert count(db, Comparison) == 0


def test_a_late_submission_after_expiry_is_kept(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 2, responses_each=2)
    start = utcnow()
    assignment = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert assignment is not None
    # Leasing again after the expiry marks the first lease expired.
    assignments.lease_next_task(db, queue.id, lena, now=start + timedelta(minutes=5))
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.expired
    done = assignments.submit_comparison(db, assignment.id, lena, judge(assignment, [1, 2], [6, 3]))
    assert done.pairs == 1
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.submitted
    # She had leased the same task again meanwhile: that newer lease is released.
    assert db.scalars(select(Assignment.status).where(Assignment.id != assignment.id)).all() == [
        AssignmentStatus.released
    ]


def test_skip_returns_the_task_to_others_only(db: Session, project, lena: User, omar: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    skipped = assignments.skip_assignment(
        db, assignment.id, lena, SkipSubmit(reason="other", note="  not my language ")
    )
    assert (skipped.status, skipped.skip_reason, skipped.skip_note) == (
        AssignmentStatus.skipped,
        "other",
        "not my language",
    )
    assert assignments.lease_next_task(db, queue.id, lena) is None
    again = assignments.lease_next_task(db, queue.id, omar)
    assert again is not None and again.task_id == task.id
    with pytest.raises(Conflict):
        assignments.skip_assignment(db, assignment.id, lena, SkipSubmit(reason="broken_task"))


def test_disagreement_asks_for_one_more_labeler_up_to_the_maximum(db: Session, project) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, overlap=2, max_overlap=3, disagreement_tau=0.0)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
    people = [make_user(db, name) for name in ("ann", "ben", "cat", "dan")]
    order: list[int] = []
    for person, ranks in zip(people[:2], ([1, 2, 3], [3, 2, 1]), strict=True):
        assignment = assignments.lease_next_task(db, queue.id, person)
        assert assignment is not None
        order = order or list(assignment.response_order or [])
        by_response = dict(zip(order, ranks, strict=True))
        assignments.submit_comparison(
            db,
            assignment.id,
            person,
            ComparisonSubmit(
                items=[{"response_id": r, "rank": by_response[r], "score": 4} for r in order]
            ),
        )
    db.refresh(task)
    # tau = -1 < 0: one more labeler.
    assert task.overlap == 3
    third = assignments.lease_next_task(db, queue.id, people[2])
    assert third is not None and third.task_id == task.id
    assignments.submit_comparison(
        db,
        third.id,
        people[2],
        ComparisonSubmit(items=[{"response_id": r, "rank": 1, "score": 4} for r in order]),
    )
    db.refresh(task)
    assert task.overlap == 3
    assert assignments.lease_next_task(db, queue.id, people[3]) is None


def test_demonstration_becomes_a_human_response(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, kind=QueueKind.demonstration)
    prompt = make_prompt(db, project)
    make_task(db, queue, prompt)
    db.commit()
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None and assignment.response_order is None
    with pytest.raises(InvalidInput, match="is a demonstration task"):
        assignments.submit_comparison(
            db,
            assignment.id,
            lena,
            ComparisonSubmit(
                items=[
                    {"response_id": 1, "rank": 1, "score": 1},
                    {"response_id": 2, "rank": 2, "score": 1},
                ]
            ),
        )
    done = assignments.submit_demonstration(
        db,
        assignment.id,
        lena,
        DemonstrationSubmit(
            messages=[
                {"role": "assistant", "content": "Autumn moonlight"},
                {"role": "user", "content": "Another?"},
                {"role": "assistant", "content": "A frog jumps"},
            ]
        ),
    )
    demonstration = db.get(Demonstration, done.label_id)
    assert demonstration is not None and demonstration.response_id is not None
    response = db.get(Response, demonstration.response_id)
    assert response is not None
    assert (response.content, response.source.value, response.author_id) == (
        "Autumn moonlight",
        "human",
        lena.id,
    )
    assert len(demonstration.messages) == 3


def test_requeue_superseded_reopens_slots_and_keeps_labels(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    publish_guideline(db, project, 1)
    queue = make_queue(db, project)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    assignments.submit_comparison(db, assignment.id, lena, judge(assignment, [1, 2], [6, 2]))
    assert assignments.requeue_superseded(db, queue.id) == 0
    publish_guideline(db, project, 2, "Be kinder.")
    assert assignments.requeue_superseded(db, queue.id) == 1
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.superseded
    again = assignments.lease_next_task(db, queue.id, lena)
    assert again is not None and again.task_id == task.id
    assert count(db, Comparison) == 1


def test_task_rows_are_untouched_by_leasing(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignments.lease_next_task(db, queue.id, lena)
    assert db.get(Task, task.id).overlap == 1  # type: ignore[union-attr]
