"""What each role sees first on its home page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    Model,
    Project,
    Queue,
    QueueLabeler,
    Role,
    Run,
    RunStatus,
    Task,
    User,
)
from app.models.base import utcnow
from app.services.leasing import holds_slot


@dataclass
class QueueLine:
    queue: Queue
    project: Project


@dataclass
class Overview:
    users_by_role: dict[str, int] = field(default_factory=dict)
    inactive_users: int = 0
    projects: list[Project] = field(default_factory=list)
    queues: list[QueueLine] = field(default_factory=list)
    runs_by_status: dict[str, int] = field(default_factory=dict)
    recent_runs: list[Run] = field(default_factory=list)
    models: int = 0
    my_demonstrations: int = 0
    my_comparisons: int = 0


def overview_for(db: Session, user: User) -> Overview:
    result = Overview()
    result.projects = list(
        db.scalars(select(Project).where(Project.is_archived.is_(False)).order_by(Project.name))
    )
    if user.role == Role.admin:
        rows = db.execute(
            select(User.role, func.count()).where(User.is_active.is_(True)).group_by(User.role)
        )
        result.users_by_role = {role.value: 0 for role in Role} | {
            role.value: count for role, count in rows
        }
        result.inactive_users = int(
            db.scalar(select(func.count()).select_from(User).where(User.is_active.is_(False))) or 0
        )
    if user.role in (Role.admin, Role.researcher):
        rows = db.execute(select(Run.status, func.count()).group_by(Run.status))
        result.runs_by_status = {status.value: 0 for status in RunStatus} | {
            status.value: count for status, count in rows
        }
        result.recent_runs = list(db.scalars(select(Run).order_by(Run.id.desc()).limit(10)))
        result.models = int(db.scalar(select(func.count()).select_from(Model)) or 0)
    result.queues = queues_for_labeler(db, user)
    result.my_demonstrations = int(
        db.scalar(
            select(func.count())
            .select_from(Demonstration)
            .where(Demonstration.labeler_id == user.id)
        )
        or 0
    )
    result.my_comparisons = int(
        db.scalar(
            select(func.count()).select_from(Comparison).where(Comparison.labeler_id == user.id)
        )
        or 0
    )
    return result


def queues_for_labeler(db: Session, user: User) -> list[QueueLine]:
    """Unpaused queues of live projects that are open to all or list this user."""
    member = exists().where(QueueLabeler.queue_id == Queue.id, QueueLabeler.user_id == user.id)
    rows = db.execute(
        select(Queue, Project)
        .join(Project, Project.id == Queue.project_id)
        .where(
            Project.is_archived.is_(False),
            Queue.is_paused.is_(False),
            or_(Queue.open_to_all.is_(True), member),
        )
        .order_by(Queue.priority.desc(), Queue.name)
    )
    return [QueueLine(queue=queue, project=project) for queue, project in rows]


@dataclass
class LabelerQueue:
    queue: Queue
    project: Project
    # Tasks this labeler could lease now.
    left: int
    # Labels they submitted in this queue since midnight UTC.
    done_today: int
    # Their unexpired leases in this queue, oldest first, to resume.
    held: list[int]


def labeler_queues(db: Session, user: User, *, now: datetime | None = None) -> list[LabelerQueue]:
    """The queues a labeler may work on now, with what is left for them, what they did today
    and what they hold. Other roles take no tasks, so they get none."""
    if user.role != Role.labeler or not user.is_active:
        return []
    now = now or utcnow()
    lines = queues_for_labeler(db, user)
    ids = [line.queue.id for line in lines]
    left = _left_by_queue(db, ids, user.id, now)
    done = _done_today_by_queue(db, ids, user.id, now)
    held = _held_by_queue(db, ids, user.id, now)
    return [
        LabelerQueue(
            queue=line.queue,
            project=line.project,
            left=left.get(line.queue.id, 0),
            done_today=done.get(line.queue.id, 0),
            held=held.get(line.queue.id, []),
        )
        for line in lines
    ]


def _left_by_queue(
    db: Session, queue_ids: Sequence[int], labeler_id: int, now: datetime
) -> dict[int, int]:
    """The same tasks lease_next_task would offer: not retired, below their overlap, and not
    held, done or skipped by this labeler."""
    live = (
        select(Assignment.task_id, func.count().label("taken"))
        .where(holds_slot(now))
        .group_by(Assignment.task_id)
        .subquery()
    )
    mine = select(Assignment.task_id).where(
        Assignment.labeler_id == labeler_id,
        or_(
            holds_slot(now),
            Assignment.status == AssignmentStatus.skipped,
        ),
    )
    rows = db.execute(
        select(Task.queue_id, func.count())
        .outerjoin(live, live.c.task_id == Task.id)
        .where(
            Task.queue_id.in_(queue_ids),
            Task.retired_at.is_(None),
            Task.id.not_in(mine),
            func.coalesce(live.c.taken, 0) < Task.overlap,
        )
        .group_by(Task.queue_id)
    )
    return {queue_id: count for queue_id, count in rows}


def _done_today_by_queue(
    db: Session, queue_ids: Sequence[int], labeler_id: int, now: datetime
) -> dict[int, int]:
    # Superseded labels were submitted too (re-queueing keeps them).
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    rows = db.execute(
        select(Task.queue_id, func.count())
        .select_from(Assignment)
        .join(Task, Task.id == Assignment.task_id)
        .where(
            Task.queue_id.in_(queue_ids),
            Assignment.labeler_id == labeler_id,
            Assignment.status.in_([AssignmentStatus.submitted, AssignmentStatus.superseded]),
            Assignment.finished_at >= midnight,
            Assignment.finished_at < midnight + timedelta(days=1),
        )
        .group_by(Task.queue_id)
    )
    return {queue_id: count for queue_id, count in rows}


def _held_by_queue(
    db: Session, queue_ids: Sequence[int], labeler_id: int, now: datetime
) -> dict[int, list[int]]:
    rows = db.execute(
        select(Task.queue_id, Assignment.id)
        .join(Task, Task.id == Assignment.task_id)
        .where(
            Task.queue_id.in_(queue_ids),
            Assignment.labeler_id == labeler_id,
            Assignment.status == AssignmentStatus.active,
            Assignment.lease_expires_at > now,
        )
        .order_by(Assignment.leased_at, Assignment.id)
    )
    found: dict[int, list[int]] = {}
    for queue_id, assignment_id in rows:
        found.setdefault(queue_id, []).append(assignment_id)
    return found
