"""/api/v1/projects/{project_id}/guidelines: staff read every version, labelers the published
ones of the projects they may read; admins save and publish."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiUser, SessionDep
from app.errors import NotFound
from app.models import Role, User
from app.schemas.guidelines import (
    GuidelineDiffOut,
    GuidelineSave,
    GuidelineVersionOut,
    GuidelineVersionSummary,
)
from app.services import guidelines, projects

router = APIRouter(
    responses=STANDARD_ERRORS, prefix="/projects/{project_id}/guidelines", tags=["guidelines"]
)


@router.get("", response_model=list[GuidelineVersionSummary])
def list_versions(project_id: int, db: SessionDep, user: ApiUser) -> list[GuidelineVersionSummary]:
    """Every version, oldest first, without the bodies (labelers: the published ones)."""
    projects.readable_project(db, project_id, user)
    found = guidelines.list_versions(db, project_id, published_only=_published_only(user))
    return [GuidelineVersionSummary.from_model(version) for version in found]


@router.post("", response_model=GuidelineVersionOut, status_code=status.HTTP_201_CREATED)
def save_version(
    project_id: int, data: GuidelineSave, db: SessionDep, admin: ApiAdmin
) -> GuidelineVersionOut:
    """Adds the next version as a draft."""
    return GuidelineVersionOut.from_model(
        guidelines.save_version(db, project_id, data, acting=admin)
    )


@router.get("/current", response_model=GuidelineVersionOut)
def current_guideline(project_id: int, db: SessionDep, user: ApiUser) -> GuidelineVersionOut:
    """The highest-numbered published version; 404 while none is published."""
    projects.readable_project(db, project_id, user)
    found = guidelines.current_guideline(db, project_id)
    if found is None:
        raise NotFound(f"project {project_id} has no published guideline")
    return GuidelineVersionOut.from_model(found)


@router.get("/diff", response_model=GuidelineDiffOut)
def diff_versions(
    project_id: int,
    db: SessionDep,
    user: ApiUser,
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> GuidelineDiffOut:
    projects.readable_project(db, project_id, user)
    diff = guidelines.diff_versions(
        db, project_id, from_version, to_version, published_only=_published_only(user)
    )
    return GuidelineDiffOut(
        project_id=project_id,
        from_version=from_version,
        to_version=to_version,
        lines=diff.unified,
    )


@router.get("/{version}", response_model=GuidelineVersionOut)
def get_version(
    project_id: int, version: int, db: SessionDep, user: ApiUser
) -> GuidelineVersionOut:
    projects.readable_project(db, project_id, user)
    found = guidelines.get_version(db, project_id, version, published_only=_published_only(user))
    return GuidelineVersionOut.from_model(found)


@router.post("/{version}/publish", response_model=GuidelineVersionOut)
def publish_version(
    project_id: int, version: int, db: SessionDep, _: ApiAdmin
) -> GuidelineVersionOut:
    """Makes a draft the current guideline; 409 for a published or superseded version."""
    return GuidelineVersionOut.from_model(guidelines.publish_version(db, project_id, version))


def _published_only(user: User) -> bool:
    # Drafts are the editors' work in progress: labelers never see one.
    return user.role == Role.labeler
