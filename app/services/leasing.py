"""Leasing tasks to labelers: the next task of a queue, or the same task again after a lease
expired.

A task is never leased beyond its overlap nor twice to one labeler, under any concurrency.
Each task counts the slots its assignments hold (`held_slots`, kept by database triggers), so
a lease costs the same whatever the queue's size and history: it locks the labeler's row (one
labeler's leases queue up, so the lease cap holds), marks leases past their end expired (only
live leases are read, through a partial index), and then, in one INSERT ... SELECT, picks the
first task of the partial index of tasks with a free slot and inserts the assignment with its
shuffled response order. On PostgreSQL the pick locks the task row (FOR UPDATE SKIP LOCKED)
and re-checks its free slot on the row's newest version once locked; the triggers' update of
the count takes the same row lock. On SQLite every transaction begins IMMEDIATE, taking the
database's single write lock, which serialises leases. A partial unique index backs the
"never twice to one labeler" rule in both."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.context import FromStatement

from app.errors import Conflict, NotFound, PermissionDenied
from app.models import (
    Assignment,
    AssignmentStatus,
    Project,
    Queue,
    QueueKind,
    QueueLabeler,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.models.base import UTCDateTime, utcnow
from app.services.prompts import storable_id

# Statuses that hold a labeler's slot on a task: while active (and unexpired) or once done.
LIVE = (AssignmentStatus.active, AssignmentStatus.submitted)
LEASE_ATTEMPTS = 200
# Literals, not bound parameters: PostgreSQL uses a partial index only where it can prove the
# query's condition implies the index's, which a parameter (in a cached generic plan) hides.
ACTIVE = literal_column("'active'")
_TAKEN_BY_LABELER = ("'active'", "'submitted'", "'skipped'")


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


@dataclass(frozen=True)
class LeaseQueue:
    """What leasing needs of a queue, read with the labeler's lock."""

    id: int
    name: str
    kind: QueueKind
    lease_seconds: int
    max_active_leases: int


def lease_next_task(
    db: Session, queue_id: int, labeler: User, *, now: datetime | None = None
) -> Assignment | None:
    """Leases the highest-priority task this labeler may still do, or None when none is left."""
    return lease_and_read(db, queue_id, labeler, _itself, now=now)


def _itself(assignment: Assignment) -> Assignment:
    return assignment


Read = TypeVar("Read")


def lease_and_read(
    db: Session,
    queue_id: int,
    labeler: User,
    read: Callable[[Assignment], Read],
    *,
    now: datetime | None = None,
) -> Read | None:
    """lease_next_task, returning what `read` reads of the new assignment in the lease's own
    transaction (before its commit: one transaction, and one connection checkout, a lease)."""
    now = now or utcnow()
    for _ in range(LEASE_ATTEMPTS):
        queue = _begin_lease(db, queue_id, labeler, now)
        assignment = _insert_lease(db, queue, labeler, now)
        if assignment is None:
            db.rollback()
            if not _candidates_exist(db, queue.id, labeler.id):
                db.rollback()
                return None
            db.rollback()
            # Every open task is being leased by someone else this instant (SKIP LOCKED passed
            # them over); one of those leases may fail or leave room, so look again shortly.
            time.sleep(random.uniform(0.005, 0.05))
            continue
        found = read(assignment)
        try:
            db.commit()
        except IntegrityError:
            # The unique index caught a race the locks did not see; try the next task.
            db.rollback()
            continue
        return found
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
    queue = _begin_lease(db, task.queue_id, labeler, now)
    # The triggers changed held_slots behind the session's back: read the row afresh.
    locked = db.scalar(
        select(Task)
        .where(Task.id == task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
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
    if locked.retired_at is not None:
        db.rollback()
        raise Conflict("the task was retired meanwhile; your draft is kept")
    if locked.held_slots >= locked.overlap:
        db.rollback()
        raise Conflict("the task was taken by others meanwhile; your draft is kept")
    renewed = Assignment(
        task_id=locked.id,
        labeler_id=labeler.id,
        status=AssignmentStatus.active,
        leased_at=now,
        lease_expires_at=now + timedelta(seconds=queue.lease_seconds),
        response_order=old.response_order or None,
    )
    db.add(renewed)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise Conflict("the task was leased again meanwhile; reload the queue") from None
    return renewed


def _begin_lease(db: Session, queue_id: int, labeler: User, now: datetime) -> LeaseQueue:
    """Starts the lease transaction serialised per labeler: one statement locks the labeler's
    row and reads the queue and whether they may work on it; a second marks leases past their
    end expired and counts the labeler's leases of the queue (refused at the queue's cap)."""
    if labeler.role != Role.labeler:
        raise PermissionDenied("only labelers take tasks from queues")
    db.commit()
    row = (
        db.execute(_lease_queue(), {"in_queue": queue_id, "for_labeler": labeler.id}).first()
        if storable_id(queue_id)
        else None
    )
    if row is None or not row.is_active or row.is_archived or not row.listed:
        db.rollback()
        # Same answer for "no such queue" and "not yours": ids reveal nothing.
        raise NotFound(f"no queue {queue_id} open to you")
    if row.is_paused:
        db.rollback()
        raise Conflict(f"the queue {row.name!r} is paused")
    queue = LeaseQueue(row.id, row.name, row.kind, row.lease_seconds, row.max_active_leases)
    held = _expire_and_count_leases(db, queue.id, labeler.id, now)
    if held >= queue.max_active_leases:
        db.rollback()
        raise Conflict(
            f"you hold {held} task(s) of this queue already (the most is "
            f"{queue.max_active_leases}); submit or skip one first"
        )
    return queue


# The hot path's statements are built once per process, with bound parameters, and executed
# with each request's values: building them anew cost more CPU than running them (issue 17).


@cache
def _lease_queue() -> Select[tuple[Any, ...]]:
    listed = (
        exists()
        .where(QueueLabeler.queue_id == Queue.id, QueueLabeler.user_id == User.id)
        .correlate(Queue, User)
    )
    # On PostgreSQL one labeler's concurrent requests queue up here, so max_active_leases
    # holds. On SQLite every transaction begins IMMEDIATE (app/db.py): the database's single
    # write lock serialises all leases, and SQLAlchemy drops FOR UPDATE there anyway.
    return (
        select(
            Queue.id,
            Queue.name,
            Queue.kind,
            Queue.lease_seconds,
            Queue.max_active_leases,
            Queue.is_paused,
            (Queue.open_to_all | listed).label("listed"),
            Project.is_archived,
            User.is_active,
        )
        .join(Project, Project.id == Queue.project_id)
        .join(User, true())
        .where(Queue.id == bindparam("in_queue"), User.id == bindparam("for_labeler"))
        .with_for_update(of=User)
    )


def _expire_and_count_leases(db: Session, queue_id: int, labeler_id: int, now: datetime) -> int:
    """Marks every lease past its end expired (their tasks' slots reopen through the
    triggers), and counts the labeler's unexpired leases of the queue. Only active leases are
    read, through their partial indexes. On PostgreSQL one statement does both, and a lease
    another transaction is marking (or submitting) is skipped rather than waited for."""
    postgres = db.get_bind().dialect.name == "postgresql"
    expire, count = _expiry(postgres)
    values = {"at": now, "for_labeler": labeler_id, "in_queue": queue_id}
    if expire is not None:
        db.execute(expire, {"at": now})
    return int(db.scalar(count, values) or 0)


@cache
def _expiry(postgres: bool) -> tuple[Update | None, Select[tuple[int]]]:
    """The expiry UPDATE (None on PostgreSQL, where it is a CTE of the count) and the count."""
    now = bindparam("at", type_=UTCDateTime())
    due = select(Assignment.id).where(
        Assignment.status == ACTIVE, Assignment.lease_expires_at <= now
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    expire = (
        update(Assignment)
        .where(Assignment.id.in_(due))
        .values(status=AssignmentStatus.expired, finished_at=now)
    )
    count = (
        select(func.count())
        .select_from(Assignment)
        .join(Task, Task.id == Assignment.task_id)
        .where(
            Assignment.labeler_id == bindparam("for_labeler"),
            Assignment.status == ACTIVE,
            Assignment.lease_expires_at > now,
            Task.queue_id == bindparam("in_queue"),
        )
    )
    if postgres:
        # A data-modifying WITH runs once whether or not the query reads it; the count leaves
        # out leases past their end by their time, so it needs nothing from the UPDATE.
        return None, count.add_cte(expire.returning(Assignment.id).cte("expired"))
    return expire.execution_options(synchronize_session=False), count


def holds_slot(now: datetime) -> ColumnElement[bool]:
    """An assignment that counts against its task's overlap: submitted, or leased and
    unexpired."""
    return or_(
        Assignment.status == AssignmentStatus.submitted,
        and_(Assignment.status == AssignmentStatus.active, Assignment.lease_expires_at > now),
    )


def _open_tasks(
    queue_id: int | ColumnElement[int], labeler_id: int | ColumnElement[int]
) -> Select[tuple[int]]:
    """Tasks with a free slot (as the partial index ix_tasks_open has them, expired leases
    marked first) that this labeler never held, did or skipped, in the order leases take them."""
    mine = exists().where(
        Assignment.task_id == Task.id,
        Assignment.labeler_id == labeler_id,
        Assignment.status.in_([literal_column(status) for status in _TAKEN_BY_LABELER]),
    )
    return (
        select(Task.id)
        .where(
            Task.queue_id == queue_id,
            Task.retired_at.is_(None),
            Task.held_slots < Task.overlap,
            ~mine,
        )
        .order_by(Task.priority.desc(), Task.id)
    )


def _candidates_exist(db: Session, queue_id: int, labeler_id: int) -> bool:
    return db.scalar(_open_tasks(queue_id, labeler_id).limit(1)) is not None


def _insert_lease(
    db: Session, queue: LeaseQueue, labeler: User, now: datetime
) -> Assignment | None:
    """Leases the first open task (see _lease_insert) in one statement; returns the new
    assignment, or None when no task was free."""
    postgres = db.get_bind().dialect.name == "postgresql"
    return db.scalar(
        _lease_insert(postgres, queue.kind == QueueKind.comparison),
        {
            "in_queue": queue.id,
            "for_labeler": labeler.id,
            "at": now,
            "until": now + timedelta(seconds=queue.lease_seconds),
        },
    )


@cache
def _lease_insert(postgres: bool, shuffled: bool) -> FromStatement[tuple[Assignment]]:
    """One statement: pick the first open task (locking it on PostgreSQL, passing over rows
    others hold locked) and insert this labeler's assignment of it, with its responses in a
    shuffled display order; returns the new assignment, or nothing when no task was free."""
    labeler_id = bindparam("for_labeler", type_=Integer())
    picked = (
        _open_tasks(bindparam("in_queue", type_=Integer()), labeler_id)
        .limit(1)
        .with_for_update(skip_locked=True, of=Task)
        .subquery("picked")
    )
    values = select(
        picked.c.id,
        labeler_id,
        literal_column("'active'"),
        bindparam("at", type_=UTCDateTime()),
        bindparam("until", type_=UTCDateTime()),
        # A demonstration task's response is the draft it offers, shown unshuffled.
        _shuffled_responses(postgres, picked.c.id) if shuffled else null(),
        literal_column("0.0"),
    ).select_from(picked)
    # A table INSERT read back as an Assignment: executed with a dict of values, an ORM
    # INSERT would be taken for a bulk insert of those values.
    lease = (
        insert(Assignment.__table__)
        .from_select(
            [
                "task_id",
                "labeler_id",
                "status",
                "leased_at",
                "lease_expires_at",
                "response_order",
                "idle_seconds",
            ],
            values,
        )
        .returning(*Assignment.__table__.c)
    )
    return select(Assignment).from_statement(lease)


def _shuffled_responses(postgres: bool, task_id: ColumnElement[int]) -> ColumnElement[object]:
    """A comparison task's response ids as a JSON array in random order (the display order of
    this assignment, so no position favours a response); NULL for a task without responses."""
    if postgres:
        return (
            select(func.jsonb_agg(aggregate_order_by(TaskResponse.response_id, func.random())))
            .where(TaskResponse.task_id == task_id)
            .scalar_subquery()
        )
    shuffled = (
        select(TaskResponse.response_id)
        .where(TaskResponse.task_id == task_id)
        .order_by(func.random())
        .subquery()
    )
    return (
        select(func.nullif(func.json_group_array(shuffled.c.response_id), "[]"))
        .select_from(shuffled)
        .scalar_subquery()
    )
