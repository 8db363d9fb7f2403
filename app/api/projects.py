"""/api/v1/projects: staff read every project, labelers those with a queue open to them;
admins create and edit."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiUser, SessionDep
from app.schemas.projects import ProjectCreate, ProjectOut, ProjectUpdate
from app.services import projects

router = APIRouter(responses=STANDARD_ERRORS, prefix="/projects", tags=["projects"])


@router.get("", response_model=list[ProjectOut])
def list_projects(
    db: SessionDep, user: ApiUser, include_archived: bool = False
) -> list[ProjectOut]:
    """Staff get every project; a labeler those with a queue open to them."""
    found = projects.list_projects(db, include_archived=include_archived, reader=user)
    return [ProjectOut.from_model(project) for project in found]


@router.post("", response_model=ProjectOut, status_code=status.HTTP_201_CREATED)
def create_project(data: ProjectCreate, db: SessionDep, admin: ApiAdmin) -> ProjectOut:
    return ProjectOut.from_model(projects.create_project(db, data, acting=admin))


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: int, db: SessionDep, user: ApiUser) -> ProjectOut:
    return ProjectOut.from_model(projects.readable_project(db, project_id, user))


@router.patch("/{project_id}", response_model=ProjectOut)
def update_project(project_id: int, data: ProjectUpdate, db: SessionDep, _: ApiAdmin) -> ProjectOut:
    return ProjectOut.from_model(projects.update_project(db, project_id, data))
