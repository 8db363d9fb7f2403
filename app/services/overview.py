"""What each role sees first on its home page."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    Demonstration,
    Model,
    Project,
    Queue,
    QueueLabeler,
    Role,
    Run,
    RunStatus,
    User,
)


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
