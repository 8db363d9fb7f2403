"""Projects: one labeling effort with its label schema."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Project, User
from app.schemas.projects import ProjectCreate, ProjectUpdate


def list_projects(db: Session, *, include_archived: bool = False) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if not include_archived:
        query = query.where(Project.is_archived.is_(False))
    return list(db.scalars(query))


def get_project(db: Session, project_id: int) -> Project:
    project = db.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project with id {project_id}")
    return project


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
