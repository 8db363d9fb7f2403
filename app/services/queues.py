"""Queues: their settings, who may work on them, and their progress.

Their tasks and gold answers live in app/services/tasks.py (still reachable here by their old
names); leasing lives in app/services/leasing.py, which asks `can_work_on` here who may work
on a queue."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Assignment, AssignmentStatus, Project, Queue, QueueLabeler, Role, Task, User
from app.models.base import utcnow
from app.schemas.queues import QueueCreate, QueueProgress, QueueUpdate
from app.services.prompts import get_project_checked, storable_id

# Ids per IN (...) list: far below SQLite's and PostgreSQL's limits on bound parameters.
CHUNK = 500


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# --- queues -----------------------------------------------------------------------------------


def list_queues(db: Session, project_id: int) -> list[Queue]:
    get_project_checked(db, project_id)
    query = select(Queue).where(Queue.project_id == project_id).order_by(Queue.name)
    return list(db.scalars(query))


def get_queue(db: Session, queue_id: int) -> Queue:
    queue = db.get(Queue, queue_id) if storable_id(queue_id) else None
    if queue is None:
        raise NotFound(f"no queue with id {queue_id}")
    return queue


def create_queue(db: Session, project_id: int, data: QueueCreate, acting: User) -> Queue:
    get_project_checked(db, project_id)
    labeler_ids = _active_labeler_ids(db, data.labeler_ids)
    queue = Queue(
        project_id=project_id,
        name=data.name,
        kind=data.kind,
        overlap=data.overlap,
        max_overlap=data.max_overlap,
        disagreement_tau=data.disagreement_tau,
        priority=data.priority,
        lease_seconds=data.lease_seconds,
        max_active_leases=data.max_active_leases,
        open_to_all=data.open_to_all,
        created_by_id=acting.id,
    )
    db.add(queue)
    _flush_unique_name(db, project_id, data.name)
    db.add_all(QueueLabeler(queue_id=queue.id, user_id=user_id) for user_id in labeler_ids)
    db.commit()
    return queue


def update_queue(db: Session, queue_id: int, data: QueueUpdate) -> Queue:
    queue = get_queue(db, queue_id)
    changes = data.changes()
    overlap = changes.get("overlap", queue.overlap)
    if changes.get("max_overlap", queue.max_overlap) < overlap:
        raise InvalidInput(f"max_overlap must be at least overlap ({overlap})", field="max_overlap")
    for name, value in changes.items():
        setattr(queue, name, value)
    _flush_unique_name(db, queue.project_id, queue.name)
    db.commit()
    return queue


def set_paused(db: Session, queue_id: int, paused: bool) -> Queue:
    queue = get_queue(db, queue_id)
    queue.is_paused = paused
    db.commit()
    return queue


def _flush_unique_name(db: Session, project_id: int, name: str) -> None:
    try:
        db.flush()
    except IntegrityError as error:
        db.rollback()
        taken = exists().where(Queue.project_id == project_id, Queue.name == name)
        if db.scalar(select(taken)):
            raise Conflict(
                f"a queue named {name!r} exists in this project", field="name"
            ) from error
        raise


# --- who may work on a queue ----------------------------------------------------------------


def active_labelers(db: Session) -> list[User]:
    query = select(User).where(User.role == Role.labeler, User.is_active.is_(True))
    return list(db.scalars(query.order_by(User.username)))


def labeler_ids(db: Session, queue_id: int) -> list[int]:
    return labeler_ids_by_queue(db, [queue_id]).get(queue_id, [])


def labeler_ids_by_queue(db: Session, queue_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {queue_id: [] for queue_id in queue_ids}
    for chunk in chunks(list(queue_ids)):
        rows = db.execute(
            select(QueueLabeler.queue_id, QueueLabeler.user_id)
            .where(QueueLabeler.queue_id.in_(chunk))
            .order_by(QueueLabeler.queue_id, QueueLabeler.user_id)
        )
        for queue_id, user_id in rows:
            found[queue_id].append(user_id)
    return found


def set_labelers(db: Session, queue_id: int, user_ids: Iterable[int]) -> Queue:
    """Replaces the list of who may work on the queue when it is not open to all."""
    queue = get_queue(db, queue_id)
    wanted = set(_active_labeler_ids(db, user_ids))
    current = set(labeler_ids(db, queue_id))
    for chunk in chunks(sorted(current - wanted)):
        db.execute(
            delete(QueueLabeler).where(
                QueueLabeler.queue_id == queue_id, QueueLabeler.user_id.in_(chunk)
            )
        )
    db.add_all(QueueLabeler(queue_id=queue_id, user_id=user_id) for user_id in wanted - current)
    db.commit()
    return queue


def _active_labeler_ids(db: Session, user_ids: Iterable[int]) -> list[int]:
    """The ids, sorted and once each, or InvalidInput naming every one that is no active
    labeler."""
    ids = sorted(set(user_ids))
    users: dict[int, User] = {}
    for chunk in chunks([user_id for user_id in ids if storable_id(user_id)]):
        users |= {user.id: user for user in db.scalars(select(User).where(User.id.in_(chunk)))}
    problems = []
    for user_id in ids:
        user = users.get(user_id)
        if user is None:
            problems.append(f"no user with id {user_id}")
        elif user.role != Role.labeler:
            problems.append(f"user {user_id} ({user.username}) has the {user.role.value} role")
        elif not user.is_active:
            problems.append(f"user {user_id} ({user.username}) is deactivated")
    if problems:
        raise InvalidInput(
            "only active labelers can be listed: " + "; ".join(problems), field="labeler_ids"
        )
    return ids


def can_work_on(db: Session, queue: Queue, user: User) -> bool:
    """Whether `user` may take tasks from `queue` at all; pauses and lease limits are the
    leasing code's business."""
    if not user.is_active:
        return False
    project = db.get(Project, queue.project_id)
    if project is None or project.is_archived:
        return False
    if queue.open_to_all:
        return True
    listed = exists().where(QueueLabeler.queue_id == queue.id, QueueLabeler.user_id == user.id)
    return bool(db.scalar(select(listed)))


# --- progress -------------------------------------------------------------------------------


def queue_progress(db: Session, queue_id: int, now: datetime | None = None) -> QueueProgress:
    get_queue(db, queue_id)
    now = now or utcnow()
    tasks, required = db.execute(
        select(func.count(Task.id), func.coalesce(func.sum(Task.overlap), 0)).where(
            Task.queue_id == queue_id
        )
    ).one()
    submitted = Assignment.status == AssignmentStatus.submitted
    done, in_progress, per_hour = db.execute(
        select(
            func.count(case((submitted, 1))),
            func.count(
                case(
                    (
                        (Assignment.status == AssignmentStatus.active)
                        & (Assignment.lease_expires_at > now),
                        1,
                    )
                )
            ),
            func.count(
                case(
                    (
                        submitted
                        & (Assignment.finished_at > now - timedelta(hours=1))
                        & (Assignment.finished_at <= now),
                        1,
                    )
                )
            ),
        )
        .select_from(Assignment)
        .join(Task, Task.id == Assignment.task_id)
        .where(Task.queue_id == queue_id)
    ).one()
    left = max(0, int(required) - done - in_progress)
    return QueueProgress(
        tasks=tasks,
        required=int(required),
        done=done,
        in_progress=in_progress,
        left=left,
        per_hour=per_hour,
        eta_seconds=round(left / per_hour * 3600) if per_hour else None,
    )
