"""Project pages: admins and researchers read; admins create and edit."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError
from app.models import User
from app.schemas import common
from app.schemas.projects import DEFAULT_FLAGS, Flag, ProjectCreate, ProjectOut, ProjectUpdate
from app.services import guidelines, projects
from app.services.hub import project_hub
from app.web.rendering import form_errors, redirect, render

router = APIRouter(prefix="/projects")


def flags_text(flags: list[Flag] | tuple[Flag, ...]) -> str:
    return "\n".join(f"{flag.key}: {flag.label}" for flag in flags)


def cost_text(cost: Decimal | None) -> str:
    return "" if cost is None else str(cost)


def parse_cost(text: str) -> str | None:
    """An empty field means "not set"; anything else is for the schema to check."""
    return text.strip() or None


def parse_flags(text: str) -> list[dict[str, str]]:
    """One flag a line, "key: Label"; pydantic then checks each key and label."""
    parsed = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, label = line.partition(":")
        parsed.append({"key": key.strip(), "label": label.strip() if sep else ""})
    return parsed


def _form(
    request: Request,
    admin: User,
    *,
    project: ProjectOut | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "projects/form.html",
        {"project": project, "values": values, "errors": errors or {}},
        user=admin,
        status_code=status_code,
    )


@router.get("")
def list_projects(
    request: Request, db: SessionDep, user: WebStaff, archived: bool = False
) -> Response:
    return render(
        request,
        "projects/list.html",
        {"projects": projects.list_projects(db, include_archived=archived), "archived": archived},
        user=user,
    )


@router.get("/new")
def new_project(request: Request, admin: WebAdmin) -> Response:
    values = {
        "name": "",
        "description": "",
        "flags": flags_text(DEFAULT_FLAGS),
        "cost_per_demonstration": "",
        "cost_per_comparison": "",
    }
    return _form(request, admin, project=None, values=values)


@router.post("")
def create_project(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    name: Annotated[common.Text, Form(max_length=1000)] = "",
    description: Annotated[common.Text, Form(max_length=40_000)] = "",
    flags: Annotated[common.Text, Form(max_length=40_000)] = "",
    cost_per_demonstration: Annotated[common.Text, Form(max_length=64)] = "",
    cost_per_comparison: Annotated[common.Text, Form(max_length=64)] = "",
) -> Response:
    values = {
        "name": name,
        "description": description,
        "flags": flags,
        "cost_per_demonstration": cost_per_demonstration,
        "cost_per_comparison": cost_per_comparison,
    }
    try:
        data = ProjectCreate(
            name=name,
            description=description,
            flags=parse_flags(flags),
            cost_per_demonstration=parse_cost(cost_per_demonstration),
            cost_per_comparison=parse_cost(cost_per_comparison),
        )
        project = projects.create_project(db, data, acting=admin)
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return _form(
            request,
            admin,
            project=None,
            values=values,
            errors=form_errors(error),
            status_code=status,
        )
    return redirect(request, f"/projects/{project.id}", notice=f"Created {project.name}.")


@router.get("/{project_id}")
def show_project(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    project = ProjectOut.from_model(projects.get_project(db, project_id))
    current_guideline = guidelines.current_guideline(db, project_id)
    return render(
        request,
        "projects/detail.html",
        {
            "project": project,
            "current_guideline": current_guideline,
            "hub": project_hub(db, project_id),
        },
        user=user,
    )


@router.get("/{project_id}/edit")
def edit_project(request: Request, db: SessionDep, admin: WebAdmin, project_id: int) -> Response:
    project = ProjectOut.from_model(projects.get_project(db, project_id))
    values = {
        "name": project.name,
        "description": project.description,
        "flags": flags_text(project.flags),
        "is_archived": "on" if project.is_archived else "",
        "cost_per_demonstration": cost_text(project.cost_per_demonstration),
        "cost_per_comparison": cost_text(project.cost_per_comparison),
    }
    return _form(request, admin, project=project, values=values)


@router.post("/{project_id}/edit")
def update_project(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    project_id: int,
    name: Annotated[common.Text, Form(max_length=1000)] = "",
    description: Annotated[common.Text, Form(max_length=40_000)] = "",
    flags: Annotated[common.Text, Form(max_length=40_000)] = "",
    is_archived: Annotated[common.Text, Form(max_length=8)] = "",
    cost_per_demonstration: Annotated[common.Text, Form(max_length=64)] = "",
    cost_per_comparison: Annotated[common.Text, Form(max_length=64)] = "",
) -> Response:
    current = ProjectOut.from_model(projects.get_project(db, project_id))
    values = {
        "name": name,
        "description": description,
        "flags": flags,
        "is_archived": is_archived,
        "cost_per_demonstration": cost_per_demonstration,
        "cost_per_comparison": cost_per_comparison,
    }
    try:
        # The form always sends both costs, so an emptied field clears the cost.
        data = ProjectUpdate(
            name=name,
            description=description,
            flags=parse_flags(flags),
            is_archived=is_archived == "on",
            cost_per_demonstration=parse_cost(cost_per_demonstration),
            cost_per_comparison=parse_cost(cost_per_comparison),
        )
        project = projects.update_project(db, project_id, data)
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return _form(
            request,
            admin,
            project=current,
            values=values,
            errors=form_errors(error),
            status_code=status,
        )
    return redirect(request, f"/projects/{project.id}", notice=f"Saved {project.name}.")
