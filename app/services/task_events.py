"""Celery task events: recorded by worker/events.py, listed for admins by page and API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import TaskEvent

STATES = ("sent", "started", "succeeded", "failed", "retried", "revoked")
MAX_LIST = 500
# Error messages can be long tracebacks' last lines; the page needs the gist.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class NewTaskEvent:
    task_id: str
    task_name: str
    state: str
    hostname: str | None = None
    run_id: int | None = None
    dataset_job_id: int | None = None
    error_type: str | None = None
    error_message: str | None = None


def record_event(db: Session, event: NewTaskEvent, *, keep: int) -> TaskEvent:
    """Stores one event and trims the table to the newest `keep` rows, in one commit."""
    if event.state not in STATES:
        raise DomainError(f"unknown task event state {event.state!r}")
    row = TaskEvent(
        task_id=event.task_id[:64],
        task_name=event.task_name[:200],
        state=event.state,
        hostname=event.hostname[:200] if event.hostname else None,
        run_id=event.run_id,
        dataset_job_id=event.dataset_job_id,
        error_type=event.error_type[:200] if event.error_type else None,
        error_message=event.error_message[:MAX_ERROR_CHARS] if event.error_message else None,
    )
    db.add(row)
    db.flush()
    # Ids grow with time, so everything below the keep-th newest id is older.
    cutoff = db.scalar(select(TaskEvent.id).order_by(TaskEvent.id.desc()).offset(keep).limit(1))
    if cutoff is not None:
        db.execute(delete(TaskEvent).where(TaskEvent.id <= cutoff))
    db.commit()
    return row


def list_events(
    db: Session,
    *,
    task_name: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> Sequence[TaskEvent]:
    """The newest events first, optionally of one task name and one state."""
    if state is not None and state not in STATES:
        raise DomainError(f"state must be one of {', '.join(STATES)}")
    if not 1 <= limit <= MAX_LIST:
        raise DomainError(f"limit must be between 1 and {MAX_LIST}")
    query = select(TaskEvent).order_by(TaskEvent.id.desc()).limit(limit)
    if task_name:
        query = query.where(TaskEvent.task_name == task_name)
    if state:
        query = query.where(TaskEvent.state == state)
    return db.scalars(query).all()


def task_names(db: Session) -> list[str]:
    """The task names that have events, for the page's filter."""
    return list(db.scalars(select(TaskEvent.task_name).distinct().order_by(TaskEvent.task_name)))
