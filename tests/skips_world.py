"""The data browser's world (tests/browsing_world.py) with what the agreement and skip
filters need: a third labeler who disagrees on task 1, the stored agreements, and two skips."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Comparison, ComparisonItem, User
from app.services.task_agreement import record_task_agreement
from tests.browsing_world import DAY2, World, judge
from tests.conftest import make_user

DAY3 = datetime(2026, 3, 3, 9, tzinfo=UTC)


@dataclass
class Extras:
    cy: User
    # cy's comparison of task 1, ranked the other way from ada's.
    disagreeing: Comparison
    # ada's skip of task 1 (unclear prompt, with a note), bob's of the gold task 2.
    skips: list[Assignment]


def add_disagreement_and_skips(db: Session, world: World) -> Extras:
    """Task 0: ada and bob agree (1.0). Task 1: ada and cy disagree on its one pair (0.0).
    Task 2: an import only, no stored figure."""
    cy = make_user(db, "cy")
    disagreeing = judge(db, world.tasks[1], cy, at=DAY2)
    _reverse(db, disagreeing)
    for task in world.tasks:
        record_task_agreement(db, task.id)
    skips = [
        _skip(db, world.tasks[1].id, world.ada, "unclear_prompt", "What is asked here?", 40),
        _skip(db, world.tasks[2].id, world.bob, "broken_task", None, 5),
    ]
    db.commit()
    return Extras(cy, disagreeing, skips)


def _reverse(db: Session, comparison: Comparison) -> None:
    items = list(
        db.scalars(
            select(ComparisonItem)
            .where(ComparisonItem.comparison_id == comparison.id)
            .order_by(ComparisonItem.response_id)
        )
    )
    for rank, item in zip(range(len(items), 0, -1), items, strict=True):
        item.rank = rank
    db.flush()


def _skip(
    db: Session, task_id: int, labeler: User, reason: str, note: str | None, seconds: int
) -> Assignment:
    skip = Assignment(
        task_id=task_id,
        labeler_id=labeler.id,
        status=AssignmentStatus.skipped,
        leased_at=DAY3,
        lease_expires_at=DAY3 + timedelta(hours=1),
        finished_at=DAY3 + timedelta(seconds=seconds + 10),
        idle_seconds=10.0,
        skip_reason=reason,
        skip_note=note,
    )
    db.add(skip)
    db.flush()
    return skip
