"""A task's held_slots, kept by triggers on assignments (migration 0012): after every kind of
change to a task's assignments it equals the number that are active or submitted, whichever
code path made the change."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Role, Task
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, SkipReason, SkipSubmit
from app.services import assignments
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue


def held(db: Session, task_id: int) -> tuple[int, int]:
    """The trigger-kept count and the count of the rows themselves."""
    kept = db.scalar(select(Task.held_slots).where(Task.id == task_id))
    counted = db.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.task_id == task_id,
            Assignment.status.in_([AssignmentStatus.active, AssignmentStatus.submitted]),
        )
    )
    return int(kept or 0), int(counted or 0)


def test_held_slots_follow_every_change_of_a_tasks_assignments(db: Session) -> None:
    project = make_project(db)
    queue = make_queue(db, project, overlap=3, max_overlap=3, lease_seconds=60)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=2)
    ana, ben, cleo = (make_user(db, name, Role.labeler) for name in ("ana", "ben", "cleo"))
    start = utcnow()

    first = assignments.lease_next_task(db, queue.id, ana, now=start)
    second = assignments.lease_next_task(db, queue.id, ben, now=start)
    assert first is not None and second is not None
    assert held(db, task.id) == (2, 2)

    order = first.response_order or []
    label = ComparisonSubmit(
        items=[
            {"response_id": order[0], "rank": 1, "score": 6},
            {"response_id": order[1], "rank": 2, "score": 3},
        ]
    )
    assignments.submit_comparison(db, first.id, ana, label, now=start)
    assert held(db, task.id) == (2, 2)  # active to submitted: still held

    assignments.skip_assignment(db, second.id, ben, SkipSubmit(reason=SkipReason.broken_task))
    assert held(db, task.id) == (1, 1)

    third = assignments.lease_next_task(db, queue.id, cleo, now=start)
    assert third is not None
    assert held(db, task.id) == (2, 2)
    # Cleo's lease runs out; the next lease marks it expired and frees its slot.
    later = start + timedelta(minutes=5)
    assert assignments.lease_next_task(db, queue.id, make_user(db, "dan"), now=later) is not None
    assert db.scalar(select(Assignment.status).where(Assignment.id == third.id)) == (
        AssignmentStatus.expired
    )
    assert held(db, task.id) == (2, 2)  # Ana's submitted label and Dan's lease

    renewed = assignments.renew_assignment(db, third.id, cleo, now=later)
    assert held(db, task.id) == (3, 3)

    db.execute(
        update(Assignment)
        .where(Assignment.id == first.id)
        .values(status=AssignmentStatus.superseded)
    )
    db.execute(delete(Assignment).where(Assignment.id == renewed.id))
    db.commit()
    assert held(db, task.id) == (1, 1)
