"""Guideline pages: admins save and publish versions; researchers read them and their diffs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError
from app.models import User
from app.schemas import common
from app.schemas.guidelines import MAX_BODY_LENGTH, MAX_NOTE_LENGTH, GuidelineSave
from app.services import guidelines, projects
from app.web.rendering import form_errors, redirect, render

router = APIRouter(prefix="/projects/{project_id}/guidelines")


def _versions_page(
    request: Request,
    db: SessionDep,
    user: User,
    project_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = projects.get_project(db, project_id)
    versions = guidelines.list_versions(db, project_id)
    current = guidelines.current_guideline(db, project_id)
    latest = versions[-1] if versions else None
    if values is None:
        values = {"body": latest.body if latest else "", "note": ""}
    return render(
        request,
        "guidelines/versions.html",
        {
            "project": project,
            "versions": list(reversed(versions)),
            "current": current,
            "latest": latest,
            "publishable": {
                found.version for found in versions if guidelines.is_publishable(found, current)
            },
            "authors": guidelines.authors(db, versions),
            "values": values,
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


@router.get("")
def list_versions(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _versions_page(request, db, user, project_id)


@router.post("")
def save_version(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    project_id: int,
    # Room for CRLF line endings, which the schema turns into LF before checking the length.
    body: Annotated[common.Text, Form(max_length=2 * MAX_BODY_LENGTH)] = "",
    note: Annotated[common.Text, Form(max_length=4 * MAX_NOTE_LENGTH)] = "",
) -> Response:
    projects.get_project(db, project_id)
    try:
        saved = guidelines.save_version(
            db, project_id, GuidelineSave(body=body, note=note), acting=admin
        )
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return _versions_page(
            request,
            db,
            admin,
            project_id,
            values={"body": body, "note": note},
            errors=form_errors(error),
            status_code=status,
        )
    return redirect(
        request,
        f"/projects/{project_id}/guidelines",
        notice=f"Saved version {saved.version} as a draft.",
    )


@router.get("/diff")
def diff_versions(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> Response:
    project = projects.get_project(db, project_id)
    diff = guidelines.diff_versions(db, project_id, from_version, to_version)
    return render(
        request,
        "guidelines/diff.html",
        {
            "project": project,
            "diff": diff,
            "versions": list(reversed(guidelines.list_versions(db, project_id))),
        },
        user=user,
    )


@router.get("/{version}")
def show_version(
    request: Request, db: SessionDep, user: WebStaff, project_id: int, version: int
) -> Response:
    project = projects.get_project(db, project_id)
    found = guidelines.get_version(db, project_id, version)
    current = guidelines.current_guideline(db, project_id)
    return render(
        request,
        "guidelines/version.html",
        {
            "project": project,
            "guideline": found,
            "is_current": current is not None and current.version == found.version,
            "publishable": guidelines.is_publishable(found, current),
            "author": guidelines.authors(db, [found]).get(found.created_by_id or 0),
        },
        user=user,
    )


@router.post("/{version}/publish")
def publish_version(
    request: Request, db: SessionDep, admin: WebAdmin, project_id: int, version: int
) -> Response:
    published = guidelines.publish_version(db, project_id, version)
    return redirect(
        request,
        f"/projects/{project_id}/guidelines",
        notice=f"Published version {published.version}: it is now the current guideline.",
    )
