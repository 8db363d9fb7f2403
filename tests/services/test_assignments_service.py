"""Leasing and submitting on both backends (locking: test_lease_concurrency.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    Draft,
    LabelSource,
    Pair,
    QueueKind,
    QueueLabeler,
    Response,
    ResponseSource,
    Role,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, DemonstrationSubmit, SkipSubmit
from app.schemas.queues import TaskItem, TasksAdd
from app.services import assignments, drafts, prompts, tasks
from app.services.leasing import LeaseExpired
from tests.conftest import make_user
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_responses,
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


@pytest.mark.parametrize("marked", [True, False], ids=["marked-expired", "still-active"])
def test_a_submission_after_expiry_is_refused_and_keeps_the_draft(
    db: Session, project, lena: User, marked: bool
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 2, responses_each=2)
    start = utcnow()
    assignment = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert assignment is not None
    drafts.save_draft(db, assignment.id, lena, {"comment": "half done"}, now=start)
    later = start + timedelta(minutes=5)
    if marked:
        # Leasing again after the expiry marks the first lease expired.
        assignments.lease_next_task(db, queue.id, lena, now=later)
    db.refresh(assignment)
    status = assignment.status
    assert status == (AssignmentStatus.expired if marked else AssignmentStatus.active)
    with pytest.raises(LeaseExpired) as caught:
        assignments.submit_comparison(
            db, assignment.id, lena, judge(assignment, [1, 2], [6, 3]), now=later
        )
    assert caught.value.code == "lease_expired"
    assert caught.value.message == (
        f"the lease on assignment {assignment.id} expired at "
        f"{(start + timedelta(seconds=60)).isoformat()}; your draft is kept: renew the lease "
        "to submit it"
    )
    db.rollback()
    db.refresh(assignment)
    assert assignment.status == status
    assert (count(db, Comparison), count(db, Pair)) == (0, 0)
    kept = drafts.get_draft(db, assignment)
    assert kept is not None and (kept.content, kept.revision) == ({"comment": "half done"}, 1)


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


# --- drafts go with the label -----------------------------------------------------------------


def test_submit_and_skip_delete_the_draft_of_that_task_only(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 2, responses_each=2)
    first = assignments.lease_next_task(db, queue.id, lena)
    second = assignments.lease_next_task(db, queue.id, lena)
    assert first is not None and second is not None
    drafts.save_draft(db, first.id, lena, {"comment": "one"})
    drafts.save_draft(db, second.id, lena, {"comment": "two"})
    assignments.submit_comparison(db, first.id, lena, judge(first, [1, 2], [6, 2]))
    assert db.scalars(select(Draft.task_id)).all() == [second.task_id]
    assignments.skip_assignment(db, second.id, lena, SkipSubmit(reason="broken_task"))
    assert count(db, Draft) == 0


# --- renewing an expired lease ----------------------------------------------------------------


def test_renew_leases_the_same_task_again_and_the_draft_carries_over(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
    start = utcnow()
    old = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert old is not None
    drafts.save_draft(db, old.id, lena, {"comment": "keep me"}, now=start)
    later = start + timedelta(minutes=5)

    renewed = assignments.renew_assignment(db, old.id, lena, now=later)

    assert renewed.id != old.id
    assert (renewed.task_id, renewed.labeler_id, renewed.status) == (
        task.id,
        lena.id,
        AssignmentStatus.active,
    )
    assert renewed.response_order == old.response_order
    assert (renewed.leased_at, renewed.lease_expires_at) == (later, later + timedelta(seconds=60))
    db.refresh(old)
    assert (old.status, old.finished_at) == (AssignmentStatus.expired, later)
    draft = drafts.get_draft(db, renewed)
    assert draft is not None and (draft.content, draft.revision) == ({"comment": "keep me"}, 1)
    # Renewing again (a double click) gives the same lease, not a second one.
    assert assignments.renew_assignment(db, old.id, lena, now=later).id == renewed.id
    assert count(db, Assignment) == 2
    done = assignments.submit_comparison(
        db, renewed.id, lena, judge(renewed, [1, 2, 3], [7, 4, 1]), now=later
    )
    assert (done.assignment_id, done.pairs) == (renewed.id, 3)
    assert count(db, Draft) == 0


def test_renew_refuses_when_others_took_the_task_and_keeps_the_draft(
    db: Session, project, lena: User, omar: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    start = utcnow()
    old = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert old is not None
    drafts.save_draft(db, old.id, lena, {"comment": "mine"}, now=start)
    later = start + timedelta(minutes=5)
    taken = assignments.lease_next_task(db, queue.id, omar, now=later)
    assert taken is not None and taken.task_id == old.task_id

    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, old.id, lena, now=later)

    assert caught.value.message == "the task was taken by others meanwhile; your draft is kept"
    assert count(db, Assignment) == 2
    db.refresh(old)
    assert old.status == AssignmentStatus.expired
    kept = drafts.get_draft(db, old)
    assert kept is not None and kept.content == {"comment": "mine"}


def test_renew_refuses_what_is_not_an_expired_lease_of_yours(
    db: Session, project, lena: User, omar: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 2, responses_each=2)
    start = utcnow()
    live = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert live is not None
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, live.id, lena, now=start + timedelta(seconds=30))
    assert caught.value.message == (
        f"your lease on assignment {live.id} runs until "
        f"{(start + timedelta(seconds=60)).isoformat()}; nothing to renew"
    )
    with pytest.raises(NotFound):
        assignments.renew_assignment(db, live.id, omar, now=start + timedelta(minutes=5))
    assignments.submit_comparison(db, live.id, lena, judge(live, [1, 2], [5, 3]), now=start)
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, live.id, lena, now=start + timedelta(minutes=5))
    assert caught.value.message == (
        f"assignment {live.id} is submitted; only an expired one renews"
    )
    assert count(db, Assignment) == 1


def test_renew_respects_the_pause_and_the_lease_cap(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60, max_active_leases=1)
    first, second = make_comparison_tasks(db, queue, project, 2, responses_each=2)
    start = utcnow()
    old = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert old is not None and old.task_id == first.id
    later = start + timedelta(minutes=5)
    second.priority = 1
    db.commit()
    other = assignments.lease_next_task(db, queue.id, lena, now=later)
    assert other is not None and other.task_id == second.id
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, old.id, lena, now=later)
    assert caught.value.message == (
        "you hold 1 task(s) of this queue already (the most is 1); submit or skip one first"
    )
    queue.is_paused = True
    db.commit()
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, old.id, lena, now=later)
    assert caught.value.message == "the queue 'comparison queue' is paused"
    assert count(db, Assignment) == 2


# --- rewrites ---------------------------------------------------------------------------------


def test_rewrites_become_responses_with_their_own_comparison_and_pair(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    guideline = publish_guideline(db, project, 1)
    queue = make_queue(db, project)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    a, b, c = assignment.response_order or []
    data = judge(
        assignment,
        [1, 2, 3],
        [6, 4, 2],
        idempotency_key="rewrite-key-1",
        rewrites=[
            {"response_id": c, "content": "A much better answer."},
            {"response_id": a, "content": "Better still."},
        ],
    )
    done = assignments.submit_comparison(db, assignment.id, lena, data)

    assert (done.pairs, len(done.rewrites)) == (3, 2)
    new_c, new_a = done.rewrites
    for new_id, original, text in (
        (new_c, c, "A much better answer."),
        (new_a, a, "Better still."),
    ):
        response = db.get(Response, new_id)
        assert response is not None
        assert (
            response.prompt_id,
            response.content,
            response.source,
            response.author_id,
            response.parent_id,
        ) == (task.prompt_id, text, ResponseSource.human, lena.id, original)
    main = db.get(Comparison, done.label_id)
    assert main is not None and main.rewrite_in_comparison_id is None
    made = db.scalars(
        select(Comparison)
        .where(Comparison.rewrite_in_comparison_id == main.id)
        .order_by(Comparison.id)
    ).all()
    assert [
        (
            found.task_id,
            found.assignment_id,
            found.source,
            found.source_name,
            found.prompt_id,
            found.labeler_id,
            found.guideline_version_id,
            found.idempotency_key,
        )
        for found in made
    ] == [
        (None, None, LabelSource.labeler, "rewrite", task.prompt_id, lena.id, guideline.id, None)
    ] * 2
    for found, new_id, original in zip(made, done.rewrites, (c, a), strict=True):
        items = db.execute(
            select(ComparisonItem.response_id, ComparisonItem.rank, ComparisonItem.score)
            .where(ComparisonItem.comparison_id == found.id)
            .order_by(ComparisonItem.rank)
        ).all()
        assert [tuple(item) for item in items] == [(new_id, 1, None), (original, 2, None)]
        pairs = db.execute(
            select(
                Pair.winner_response_id, Pair.loser_response_id, Pair.margin, Pair.prompt_id
            ).where(Pair.comparison_id == found.id)
        ).all()
        assert [tuple(pair) for pair in pairs] == [(new_id, original, None, task.prompt_id)]
    assert (count(db, Comparison), count(db, Pair), count(db, Response)) == (3, 5, 5)
    # A retry learns the same new response ids.
    again = assignments.submit_comparison(db, assignment.id, lena, data)
    assert (again.replayed, again.label_id, again.pairs, again.rewrites) == (
        True,
        done.label_id,
        3,
        (min(done.rewrites), max(done.rewrites)),
    )
    # Later comparison tasks of the prompt show the rewrites.
    later_queue = make_queue(db, project, name="round two")
    added = tasks.add_tasks_for_prompts(db, later_queue.id, [task.prompt_id])
    (later_task,) = added.tasks
    assert tasks.response_ids_by_task(db, [later_task.id])[later_task.id] == [
        *sorted([a, b, c]),
        new_c,
        new_a,
    ]
    assert [r.id for r in prompts.list_responses(db, task.prompt_id)][-2:] == [new_c, new_a]


@pytest.mark.parametrize(
    ("rewrite", "error"),
    [
        ({"content": " answer 0 \n"}, "the rewrite of response {id} is the same as the original"),
        ({"content": "   "}, "a rewrite cannot be empty"),
        ({"response_id": 999_999}, "a rewrite names a judged response; not judged: 999999"),
    ],
    ids=["unchanged", "blank", "not-shown"],
)
def test_bad_rewrites_store_nothing(
    db: Session, project, lena: User, rewrite: dict[str, object], error: str
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    first = min(assignment.response_order or [])
    wanted = error.format(id=first)
    body = {"response_id": first, "content": "new"} | rewrite
    if rewrite.get("content") == "   " or "response_id" in rewrite:
        with pytest.raises(ValidationError, match=wanted):
            judge(assignment, [1, 2], [6, 2], rewrites=[body])
        return
    with pytest.raises(InvalidInput) as caught:
        assignments.submit_comparison(
            db, assignment.id, lena, judge(assignment, [1, 2], [6, 2], rewrites=[body])
        )
    assert (caught.value.message, caught.value.field) == (wanted, "rewrites.0.content")
    db.rollback()
    db.refresh(assignment)
    assert assignment.status == AssignmentStatus.active
    assert (count(db, Comparison), count(db, Pair), count(db, Response)) == (0, 0, 2)


# --- demonstration tasks offering a model draft -----------------------------------------------


def test_a_demonstration_task_offers_at_most_one_draft_response(db: Session, project) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, kind=QueueKind.demonstration)
    prompt = make_prompt(db, project)
    one, two = make_responses(db, prompt, 2)
    db.commit()
    with pytest.raises(InvalidInput) as caught:
        tasks.add_tasks(
            db,
            queue.id,
            TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[one.id, two.id])]),
        )
    assert (caught.value.message, caught.value.field) == (
        "a demonstration task offers at most one draft response",
        "items.0.response_ids",
    )
    other = make_responses(db, make_prompt(db, project, "Other prompt."), 1)[0]
    with pytest.raises(InvalidInput) as caught:
        tasks.add_tasks(
            db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[other.id])])
        )
    assert caught.value.message == f"response {other.id} is not a response to prompt {prompt.id}"
    assert count(db, Task) == 0
    (task,) = tasks.add_tasks(
        db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[one.id])])
    )
    assert tasks.response_ids_by_task(db, [task.id]) == {task.id: [one.id]}


def test_edited_draft_must_name_the_tasks_draft_response(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, kind=QueueKind.demonstration)
    prompt = make_prompt(db, project)
    offered, same_prompt = make_responses(db, prompt, 2)
    (task,) = tasks.add_tasks(
        db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[offered.id])])
    )
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None and assignment.response_order is None
    assert assignments.assignment_view(db, assignment)[3] == []
    assert assignments.draft_response(db, task) == offered

    def edited(draft_id: int) -> DemonstrationSubmit:
        return DemonstrationSubmit(
            messages=[{"role": "assistant", "content": "answer 0, improved"}],
            origin="edited_draft",
            draft_response_id=draft_id,
        )

    with pytest.raises(InvalidInput) as caught:
        assignments.submit_demonstration(db, assignment.id, lena, edited(same_prompt.id))
    assert (caught.value.message, caught.value.field) == (
        f"response {same_prompt.id} is not this task's draft response",
        "draft_response_id",
    )
    assert (count(db, Demonstration), count(db, Response)) == (0, 2)
    done = assignments.submit_demonstration(db, assignment.id, lena, edited(offered.id))
    demonstration = db.get(Demonstration, done.label_id)
    assert demonstration is not None
    assert (demonstration.origin, demonstration.draft_response_id) == (
        DemonstrationOrigin.edited_draft,
        offered.id,
    )
    answer = db.get(Response, demonstration.response_id)
    assert answer is not None and (answer.content, answer.parent_id) == (
        "answer 0, improved",
        offered.id,
    )


def test_edited_draft_on_a_task_without_one_is_refused(db: Session, project, lena: User) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, kind=QueueKind.demonstration)
    prompt = make_prompt(db, project)
    (response,) = make_responses(db, prompt, 1)
    task = make_task(db, queue, prompt)
    db.commit()
    assignment = assignments.lease_next_task(db, queue.id, lena)
    assert assignment is not None
    assert assignments.draft_response(db, task) is None
    with pytest.raises(InvalidInput) as caught:
        assignments.submit_demonstration(
            db,
            assignment.id,
            lena,
            DemonstrationSubmit(
                messages=[{"role": "assistant", "content": "mine"}],
                origin="edited_draft",
                draft_response_id=response.id,
            ),
        )
    assert caught.value.message == "this task offers no draft response"
    assert count(db, Demonstration) == 0


def test_an_old_lease_is_not_skipped_while_a_newer_one_holds_the_task(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    start = utcnow()
    old = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert old is not None
    renewed = assignments.renew_assignment(db, old.id, lena, now=start + timedelta(minutes=5))
    drafts.save_draft(db, renewed.id, lena, {"comment": "working"})
    with pytest.raises(Conflict) as caught:
        assignments.skip_assignment(db, old.id, lena, SkipSubmit(reason="broken_task"))
    assert caught.value.message == (
        f"you hold this task again as assignment {renewed.id}; skip that one instead"
    )
    db.refresh(old)
    assert old.status == AssignmentStatus.expired
    assert count(db, Draft) == 1
    skipped = assignments.skip_assignment(db, renewed.id, lena, SkipSubmit(reason="broken_task"))
    assert skipped.status == AssignmentStatus.skipped
    assert count(db, Draft) == 0


def test_renew_refuses_a_retired_task_or_one_done_under_a_newer_lease(
    db: Session, project, lena: User
) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(db, project, lease_seconds=60)
    first, second = make_comparison_tasks(db, queue, project, 2, responses_each=2)
    start = utcnow()
    old_first = assignments.lease_next_task(db, queue.id, lena, now=start)
    old_second = assignments.lease_next_task(db, queue.id, lena, now=start)
    assert old_first is not None and old_second is not None
    later = start + timedelta(minutes=5)
    first.retired_at = later
    db.commit()
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, old_first.id, lena, now=later)
    assert caught.value.message == "the task was retired meanwhile; your draft is kept"
    again = assignments.lease_next_task(db, queue.id, lena, now=later)
    assert again is not None and again.task_id == second.id
    assignments.skip_assignment(db, again.id, lena, SkipSubmit(reason="lacks_expertise"))
    with pytest.raises(Conflict) as caught:
        assignments.renew_assignment(db, old_second.id, lena, now=later)
    assert caught.value.message == f"you have skipped this task already (assignment {again.id})"
    assert count(db, Assignment) == 3
