"""Projects: one labeling effort with its label schema."""

from __future__ import annotations

from sqlalchemy import Exists, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Project, Queue, QueueLabeler, Role, User
from app.schemas.projects import ProjectCreate, ProjectUpdate


def list_projects(
    db: Session, *, include_archived: bool = False, reader: User | None = None
) -> list[Project]:
    """Every project, or with `reader` only those that user may read (`readable_project`)."""
    query = select(Project).order_by(Project.name)
    if not include_archived:
        query = query.where(Project.is_archived.is_(False))
    if reader is not None and reader.role == Role.labeler:
        query = query.where(Project.is_archived.is_(False), _open_to(reader))
    return list(db.scalars(query))


def get_project(db: Session, project_id: int) -> Project:
    project = db.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


def readable_project(db: Session, project_id: int, reader: User) -> Project:
    """The project, if `reader` may read it: staff read every project; a labeler only a live
    one with a queue open to them (open to all, or listing them), the projects their pages
    show. Any other answers as a project that does not exist, so a labeler cannot tell which
    ids are taken."""
    project = get_project(db, project_id)
    if reader.role == Role.labeler and (
        project.is_archived or not db.scalar(select(_open_to(reader, project.id)))
    ):
        raise NotFound(f"no project with id {project_id}")
    return project


def _open_to(labeler: User, project_id: int | None = None) -> Exists:
    """A queue of the project (the given one, or the row's) open to `labeler`."""
    listed = exists().where(QueueLabeler.queue_id == Queue.id, QueueLabeler.user_id == labeler.id)
    return exists().where(
        Queue.project_id == (Project.id if project_id is None else project_id),
        or_(Queue.open_to_all.is_(True), listed),
    )


def create_project(db: Session, data: ProjectCreate, *, acting: User) -> Project:
    project = Project(
        name=data.name,
        description=data.description,
        label_schema={"flags": [flag.model_dump() for flag in data.flags]},
        cost_per_demonstration=data.cost_per_demonstration,
        cost_per_comparison=data.cost_per_comparison,
        created_by_id=acting.id,
    )
    db.add(project)
    _commit_unique_name(db, data.name)
    return project


def update_project(db: Session, project_id: int, data: ProjectUpdate) -> Project:
    project = get_project(db, project_id)
    if data.name is not None:
        project.name = data.name
    if data.description is not None:
        project.description = data.description
    if data.flags is not None:
        # A new dict, so the JSON column sees the change.
        project.label_schema = {
            **project.label_schema,
            "flags": [flag.model_dump() for flag in data.flags],
        }
    if data.is_archived is not None:
        project.is_archived = data.is_archived
    # A cost sent as null is cleared, so these go by what was sent rather than by None.
    if "cost_per_demonstration" in data.model_fields_set:
        project.cost_per_demonstration = data.cost_per_demonstration
    if "cost_per_comparison" in data.model_fields_set:
        project.cost_per_comparison = data.cost_per_comparison
    _commit_unique_name(db, project.name)
    return project


def _commit_unique_name(db: Session, name: str) -> None:
    try:
        db.commit()
    except IntegrityError as error:
        db.rollback()
        if db.scalar(select(exists().where(Project.name == name))):
            raise Conflict(f"a project named {name!r} exists", field="name") from error
        raise
