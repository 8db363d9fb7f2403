"""Drafts: saved per task and labeler, revisioned, refused when unstorable, on both backends."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Assignment, Draft, Project, Queue, User
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, SkipSubmit
from app.services import assignments, drafts
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue


def count_drafts(db: Session) -> int:
    return int(db.scalar(select(func.count()).select_from(Draft)) or 0)


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def queue(db: Session, project: Project) -> Queue:
    queue = make_queue(db, project, lease_seconds=60)
    make_comparison_tasks(db, queue, project, 2, responses_each=2)
    return queue


@pytest.fixture
def lena(db: Session) -> User:
    return make_user(db, "lena")


def lease(db: Session, queue: Queue, labeler: User, **kwargs: Any) -> Assignment:
    assignment = assignments.lease_next_task(db, queue.id, labeler, **kwargs)
    assert assignment is not None
    return assignment


def test_each_save_is_the_next_revision(db: Session, queue: Queue, lena: User) -> None:
    assignment = lease(db, queue, lena)
    assert drafts.get_draft(db, assignment) is None
    start = utcnow()
    revisions = [
        drafts.save_draft(db, assignment.id, lena, {"comment": "a"}, 0, now=start).revision,
        drafts.save_draft(
            db, assignment.id, lena, {"comment": "ab"}, 1, now=start + timedelta(seconds=5)
        ).revision,
        # Without a base revision the save is unconditional.
        drafts.save_draft(db, assignment.id, lena, {"comment": "abc"}).revision,
    ]
    assert revisions == [1, 2, 3]
    found = drafts.get_draft(db, assignment)
    assert found is not None
    assert (found.task_id, found.labeler_id, found.assignment_id, found.content) == (
        assignment.task_id,
        lena.id,
        assignment.id,
        {"comment": "abc"},
    )
    assert count_drafts(db) == 1


def test_a_stale_base_revision_is_refused_and_changes_nothing(
    db: Session, queue: Queue, lena: User
) -> None:
    assignment = lease(db, queue, lena)
    start = utcnow()
    drafts.save_draft(db, assignment.id, lena, {"comment": "tab one"}, 0, now=start)
    drafts.save_draft(db, assignment.id, lena, {"comment": "tab one again"}, 1, now=start)
    with pytest.raises(Conflict) as caught:
        drafts.save_draft(db, assignment.id, lena, {"comment": "tab two"}, 1)
    assert (caught.value.message, caught.value.field) == (
        "another tab saved this draft meanwhile (it is at revision 2); "
        "reload it before saving again",
        "base_revision",
    )
    found = drafts.get_draft(db, assignment)
    assert found is not None
    db.refresh(found)
    assert (found.revision, found.content, found.updated_at) == (
        2,
        {"comment": "tab one again"},
        start,
    )


def test_a_base_revision_without_a_draft_is_stale(db: Session, queue: Queue, lena: User) -> None:
    assignment = lease(db, queue, lena)
    with pytest.raises(Conflict, match=r"it is at revision 0\)"):
        drafts.save_draft(db, assignment.id, lena, {"comment": "x"}, 3)
    assert count_drafts(db) == 0


def test_a_draft_outlives_its_expired_lease_and_returns_with_the_task(
    db: Session, queue: Queue, lena: User
) -> None:
    start = utcnow()
    first = lease(db, queue, lena, now=start)
    drafts.save_draft(db, first.id, lena, {"comment": "before"}, now=start)
    later = start + timedelta(minutes=2)
    # Saving under the expired lease is still allowed: the work is not lost.
    drafts.save_draft(db, first.id, lena, {"comment": "after expiry"}, 1, now=later)
    again = lease(db, queue, lena, now=later)
    assert (again.id != first.id, again.task_id) == (True, first.task_id)
    found = drafts.get_draft(db, again)
    assert found is not None
    assert (found.content, found.revision, found.assignment_id) == (
        {"comment": "after expiry"},
        2,
        first.id,
    )
    drafts.save_draft(db, again.id, lena, {"comment": "on"}, 2, now=later)
    found = drafts.get_draft(db, again)
    assert found is not None and (found.revision, found.assignment_id) == (3, again.id)


def test_only_your_own_open_assignment_takes_a_draft(db: Session, queue: Queue, lena: User) -> None:
    omar = make_user(db, "omar")
    assignment = lease(db, queue, lena)
    with pytest.raises(NotFound) as caught:
        drafts.save_draft(db, assignment.id, omar, {"comment": "x"})
    assert caught.value.message == f"no assignment {assignment.id} of yours"
    with pytest.raises(NotFound):
        drafts.save_draft(db, 2**40, lena, {"comment": "x"})
    order = assignment.response_order or []
    assignments.submit_comparison(
        db,
        assignment.id,
        lena,
        ComparisonSubmit(
            items=[
                {"response_id": order[0], "rank": 1, "score": 5},
                {"response_id": order[1], "rank": 2, "score": 3},
            ]
        ),
    )
    with pytest.raises(Conflict) as caught:
        drafts.save_draft(db, assignment.id, lena, {"comment": "x"})
    assert caught.value.message == f"assignment {assignment.id} is submitted; its draft is closed"
    skipped = lease(db, queue, lena)
    assignments.skip_assignment(db, skipped.id, lena, SkipSubmit(reason="lacks_expertise"))
    with pytest.raises(Conflict, match="is skipped; its draft is closed"):
        drafts.save_draft(db, skipped.id, lena, {"comment": "x"})
    assert count_drafts(db) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"comment": "a\x00b"}, "the draft is refused: text may not contain NUL bytes"),
        ({"a\x00": "key"}, "the draft is refused: text may not contain NUL bytes"),
        (
            {"items": [{"note": "x\ud800y"}]},
            "the draft is refused: text contains invalid unicode (a lone surrogate)",
        ),
        (
            {"scores": [1, math.nan]},
            "the draft is refused: numbers must be finite (no NaN or Infinity)",
        ),
        ({"score": math.inf}, "the draft is refused: numbers must be finite (no NaN or Infinity)"),
        (
            {"comment": "é" * (drafts.MAX_DRAFT_BYTES // 2)},
            f"the draft is {drafts.MAX_DRAFT_BYTES + 14} bytes as JSON; "
            f"the most is {drafts.MAX_DRAFT_BYTES}",
        ),
    ],
    ids=["nul", "nul-key", "surrogate", "nan", "infinity", "too-big"],
)
def test_unstorable_content_is_refused_and_the_old_draft_kept(
    db: Session, queue: Queue, lena: User, content: dict[str, Any], message: str
) -> None:
    assignment = lease(db, queue, lena)
    drafts.save_draft(db, assignment.id, lena, {"comment": "good"})
    with pytest.raises(InvalidInput) as caught:
        drafts.save_draft(db, assignment.id, lena, content)
    assert (caught.value.message, caught.value.field) == (message, "content")
    db.rollback()
    found = drafts.get_draft(db, assignment)
    assert found is not None
    db.refresh(found)
    assert (found.revision, found.content) == (1, {"comment": "good"})


def test_the_largest_draft_allowed_is_stored(db: Session, queue: Queue, lena: User) -> None:
    assignment = lease(db, queue, lena)
    # {"comment":"…"} is 14 bytes around the text.
    content = {"comment": "x" * (drafts.MAX_DRAFT_BYTES - 14)}
    assert drafts.save_draft(db, assignment.id, lena, content).revision == 1
    found = drafts.get_draft(db, assignment)
    assert found is not None
    db.refresh(found)
    assert found.content == content
