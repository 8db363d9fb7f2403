"""Leasing tasks to labelers: the next task of a queue, or the same task again after a lease
expired.

A task is never leased beyond its overlap nor twice to one labeler, under any concurrency:
on PostgreSQL the candidate task row is locked (FOR UPDATE SKIP LOCKED) and its live count
re-read after the lock; on SQLite every transaction begins IMMEDIATE, taking the database's
single write lock, which serialises leases. A partial unique index backs the
"never twice to one labeler" rule in both."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, PermissionDenied
from app.models import (
    Assignment,
    AssignmentStatus,
    Queue,
    QueueKind,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.services.prompts import storable_id
from app.services.queues import can_work_on

# Statuses that hold a labeler's slot on a task: while active (and unexpired) or once done.
LIVE = (AssignmentStatus.active, AssignmentStatus.submitted)
LEASE_ATTEMPTS = 200
_shuffle = random.SystemRandom().shuffle


class LeaseExpired(Conflict):
    """A label sent after its lease ran out: refused, so nobody's slot is taken twice; the
    labeler's draft stays, and renewing the lease lets them submit it."""

    code = "lease_expired"


def get_own_assignment(db: Session, assignment_id: int, labeler: User) -> Assignment:
    assignment = db.get(Assignment, assignment_id) if storable_id(assignment_id) else None
    if assignment is None or assignment.labeler_id != labeler.id:
        # Same answer for "no such assignment" and "not yours": ids reveal nothing.
        raise NotFound(f"no assignment {assignment_id} of yours")
    return assignment


def lease_has_expired(assignment: Assignment, now: datetime) -> bool:
    """Expired by status, or still marked active past its end (marking happens lazily)."""
    return assignment.status == AssignmentStatus.expired or (
        assignment.status == AssignmentStatus.active and assignment.lease_expires_at <= now
    )


def active_assignments(db: Session, labeler: User, queue_id: int | None = None) -> list[Assignment]:
    query = select(Assignment).where(
        Assignment.labeler_id == labeler.id,
        Assignment.status == AssignmentStatus.active,
        Assignment.lease_expires_at > utcnow(),
    )
    if queue_id is not None:
        query = query.join(Task, Task.id == Assignment.task_id).where(Task.queue_id == queue_id)
    return list(db.scalars(query.order_by(Assignment.leased_at)))


def lease_next_task(
    db: Session, queue_id: int, labeler: User, *, now: datetime | None = None
) -> Assignment | None:
    """Leases the highest-priority task this labeler may still do, or None when none is left."""
    now = now or utcnow()
    queue = _open_queue(db, queue_id, labeler)
    for _ in range(LEASE_ATTEMPTS):
        _begin_lease(db, queue, labeler, now)
        _check_lease_cap(db, queue, labeler, now)
        task = _lock_candidate(db, queue.id, labeler.id, now)
        if task is None:
            busy = _candidates_exist(db, queue.id, labeler.id, now)
            db.rollback()
            if not busy:
                return None
            # Every open task is being leased by someone else this instant (SKIP LOCKED passed
            # them over); one of those leases may fail or leave room, so look again shortly.
            time.sleep(random.uniform(0.005, 0.05))
            continue
        order = None
        if queue.kind == QueueKind.comparison:
            order = list(
                db.scalars(
                    select(TaskResponse.response_id)
                    .where(TaskResponse.task_id == task.id)
                    .order_by(TaskResponse.position)
                )
            )
            _shuffle(order)
        assignment = _new_lease(db, task, queue, labeler, order, now)
        try:
            db.commit()
        except IntegrityError:
            # The unique index caught a race the locks did not see; try the next task.
            db.rollback()
            continue
        return assignment
    raise Conflict("the queue is busy; try again")


def renew_assignment(
    db: Session, assignment_id: int, labeler: User, *, now: datetime | None = None
) -> Assignment:
    """After a lease expired: the same task again, as a new lease with the same response order
    (so the page looks the same), when it still has room for this labeler. The draft carries
    over, being kept per task and labeler. Renewing twice gives the same new lease."""
    now = now or utcnow()
    old = get_own_assignment(db, assignment_id, labeler)
    if not lease_has_expired(old, now):
        if old.status == AssignmentStatus.active:
            raise Conflict(
                f"your lease on assignment {old.id} runs until "
                f"{old.lease_expires_at.isoformat()}; nothing to renew"
            )
        raise Conflict(f"assignment {old.id} is {old.status.value}; only an expired one renews")
    task = db.get(Task, old.task_id)
    assert task is not None
    queue = _open_queue(db, task.queue_id, labeler)
    _begin_lease(db, queue, labeler, now)
    locked = db.scalar(select(Task).where(Task.id == task.id).with_for_update())
    assert locked is not None
    mine = db.scalars(
        select(Assignment).where(
            Assignment.task_id == task.id,
            Assignment.labeler_id == labeler.id,
            Assignment.id != old.id,
            Assignment.status.in_(
                [AssignmentStatus.active, AssignmentStatus.submitted, AssignmentStatus.skipped]
            ),
        )
    ).first()
    if mine is not None and mine.status == AssignmentStatus.active:
        db.rollback()
        return mine
    if mine is not None:
        db.rollback()
        raise Conflict(f"you have {mine.status.value} this task already (assignment {mine.id})")
    _check_lease_cap(db, queue, labeler, now)
    if locked.retired_at is not None:
        db.rollback()
        raise Conflict("the task was retired meanwhile; your draft is kept")
    live = db.scalar(select(_live_count(task.id, now))) or 0
    if live >= locked.overlap:
        db.rollback()
        raise Conflict("the task was taken by others meanwhile; your draft is kept")
    renewed = _new_lease(db, locked, queue, labeler, old.response_order, now)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("the task was leased again meanwhile; reload the queue") from None
    return renewed


def _open_queue(db: Session, queue_id: int, labeler: User) -> Queue:
    if labeler.role != Role.labeler:
        raise PermissionDenied("only labelers take tasks from queues")
    queue = db.get(Queue, queue_id) if storable_id(queue_id) else None
    if queue is None or not can_work_on(db, queue, labeler):
        # Same answer for "no such queue" and "not yours": ids reveal nothing.
        raise NotFound(f"no queue {queue_id} open to you")
    if queue.is_paused:
        raise Conflict(f"the queue {queue.name!r} is paused")
    return queue


def _begin_lease(db: Session, queue: Queue, labeler: User, now: datetime) -> None:
    """Starts the lease transaction serialised per labeler, with expired leases marked."""
    db.commit()
    # On PostgreSQL one labeler's concurrent requests queue up here, so max_active_leases
    # holds. On SQLite every transaction begins IMMEDIATE (app/db.py): the database's single
    # write lock serialises all leases, and SQLAlchemy drops FOR UPDATE there anyway.
    db.execute(select(User.id).where(User.id == labeler.id).with_for_update())
    _expire_leases(db, queue.id, now)


def _check_lease_cap(db: Session, queue: Queue, labeler: User, now: datetime) -> None:
    held = _active_leases(db, queue.id, labeler.id, now)
    if held >= queue.max_active_leases:
        db.rollback()
        raise Conflict(
            f"you hold {held} task(s) of this queue already (the most is "
            f"{queue.max_active_leases}); submit or skip one first"
        )


def _new_lease(
    db: Session, task: Task, queue: Queue, labeler: User, order: list[int] | None, now: datetime
) -> Assignment:
    assignment = Assignment(
        task_id=task.id,
        labeler_id=labeler.id,
        status=AssignmentStatus.active,
        leased_at=now,
        lease_expires_at=now + timedelta(seconds=queue.lease_seconds),
        response_order=order or None,
    )
    db.add(assignment)
    return assignment


def _expire_leases(db: Session, queue_id: int, now: datetime) -> None:
    db.execute(
        update(Assignment)
        .where(
            Assignment.status == AssignmentStatus.active,
            Assignment.lease_expires_at <= now,
            Assignment.task_id.in_(select(Task.id).where(Task.queue_id == queue_id)),
        )
        .values(status=AssignmentStatus.expired, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def _active_leases(db: Session, queue_id: int, labeler_id: int, now: datetime) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(Assignment)
            .join(Task, Task.id == Assignment.task_id)
            .where(
                Task.queue_id == queue_id,
                Assignment.labeler_id == labeler_id,
                Assignment.status == AssignmentStatus.active,
                Assignment.lease_expires_at > now,
            )
        )
        or 0
    )


def holds_slot(now: datetime) -> ColumnElement[bool]:
    """An assignment that counts against its task's overlap: submitted, or leased and
    unexpired."""
    return or_(
        Assignment.status == AssignmentStatus.submitted,
        and_(Assignment.status == AssignmentStatus.active, Assignment.lease_expires_at > now),
    )


def _live_count(task_id_column: object, now: datetime) -> object:
    return (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.task_id == task_id_column, holds_slot(now))
        .scalar_subquery()
    )


def _open_tasks(queue_id: int, labeler_id: int, now: datetime) -> Select[tuple[Task]]:
    # Tasks this labeler holds, did, or skipped are never offered to them again.
    mine = select(Assignment.task_id).where(
        Assignment.labeler_id == labeler_id,
        Assignment.status.in_(
            [AssignmentStatus.active, AssignmentStatus.submitted, AssignmentStatus.skipped]
        ),
    )
    return select(Task).where(
        Task.queue_id == queue_id,
        Task.retired_at.is_(None),
        Task.id.not_in(mine),
        _live_count(Task.id, now) < Task.overlap,
    )


def _candidates_exist(db: Session, queue_id: int, labeler_id: int, now: datetime) -> bool:
    return db.scalars(_open_tasks(queue_id, labeler_id, now).limit(1)).first() is not None


def _lock_candidate(db: Session, queue_id: int, labeler_id: int, now: datetime) -> Task | None:
    skip: list[int] = []
    while True:
        query = (
            _open_tasks(queue_id, labeler_id, now)
            .order_by(Task.priority.desc(), Task.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Task)
        )
        if skip:
            query = query.where(Task.id.not_in(skip))
        task = db.scalars(query).first()
        if task is None:
            return None
        # Re-read after the lock: a lease committed while we waited is visible only now
        # (READ COMMITTED gives each statement a fresh snapshot).
        live = db.scalar(select(_live_count(task.id, now)))
        if live is not None and live < task.overlap:
            return task
        skip.append(task.id)
