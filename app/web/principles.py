"""The Principles page (admins and researchers): a project's principles for critique runs, each
edit a new version; the revisions critique runs made under them; and the form that starts a
critique run (the same create_run as the API, a run of kind "critique")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import DomainError, InvalidInput, NotFound
from app.models import ModelRole, QueueKind, RunKind, SnapshotKind, User
from app.schemas.critique import CritiqueHyperparameters, PrincipleCreate
from app.schemas.training import RunCreate
from app.services import critique, principles, queues, registry, snapshots
from app.services import runs as run_service
from app.services.prompts import get_project_checked
from app.web.rendering import form_errors, redirect, render
from app.web.runs import PostedForm

router = APIRouter(prefix="/projects/{project_id}/principles")

PRINCIPLE_FIELDS = ("name", "critique_request", "revision_request")
# The critique form: the run's own fields, then the schema's settings by their names.
RUN_FIELDS = ("base_model_id", "snapshot_id")
SETTINGS = (
    "queue_id",
    "principle_choice",
    "limit",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
)
SCHEMA_FIELDS = CritiqueHyperparameters.model_fields
USE_PRINCIPLE = "use_principle_"
DEFAULTS = {
    name: str(SCHEMA_FIELDS[name].default)
    for name in ("principle_choice", "max_new_tokens", "temperature", "top_p", "seed")
}
HINTS = {name: info.description or "" for name, info in SCHEMA_FIELDS.items()}
# An example a new project can start from (Bai et al. 2022's first principle, shortened).
EXAMPLE = {
    "name": "harmless",
    "critique_request": "Identify specific ways in which the assistant's last response is "
    "harmful, unethical, dangerous or inaccurate.",
    "revision_request": "Rewrite the assistant's response to remove any harmful, unethical, "
    "dangerous or inaccurate content.",
}


def _page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    new: Mapping[str, str] | None = None,
    run_values: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    every = principles.list_principles(db, project_id, history=True)
    shown = principles.principles_out(db, every)
    models = registry.list_models(db, project_id)
    return render(
        request,
        "principles/page.html",
        {
            "project": project,
            "current": [found for found in shown if found.retired_at is None],
            "retired": [found for found in shown if found.retired_at is not None],
            "revisions": critique.list_revisions(db, project_id, limit=20),
            "new": new if new is not None else {},
            "example": EXAMPLE,
            "run_values": run_values if run_values is not None else DEFAULTS,
            "policies": [model for model in models if model.role == ModelRole.policy],
            "comparison_queues": [
                q for q in queues.list_queues(db, project_id) if q.kind == QueueKind.comparison
            ],
            "snapshots": [
                found
                for found in snapshots.list_snapshots(db, project_id)
                if found.superseded_by_id is None and found.kind == SnapshotKind.preference
            ],
            "hints": HINTS,
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


def _status(error: ValidationError | DomainError) -> int:
    return error.status_code if isinstance(error, DomainError) else 422


@router.get("")
def principles_page(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _page(request, db, user, project_id)


@router.post("")
def add_principle(
    request: Request, db: SessionDep, user: WebStaff, project_id: int, values: PostedForm
) -> Response:
    given = {name: values.get(name, "") for name in PRINCIPLE_FIELDS}
    try:
        made = principles.create_principle(
            db, project_id, PrincipleCreate.model_validate(given), user
        )
    except (ValidationError, DomainError) as error:
        return _page(
            request, db, user, project_id, new=given, errors=form_errors(error),
            status_code=_status(error),
        )  # fmt: skip
    return redirect(
        request, f"/projects/{project_id}/principles", notice=f"Added principle {made.name!r}."
    )


@router.post("/{principle_id}/edit")
def edit_principle(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    principle_id: int,
    values: PostedForm,
) -> Response:
    _own(db, project_id, principle_id)
    given = {name: values.get(name, "") for name in PRINCIPLE_FIELDS}
    try:
        made = principles.revise_principle(
            db, principle_id, PrincipleCreate.model_validate(given), user
        )
    except (ValidationError, DomainError) as error:
        shown = {f"edit_{principle_id}": "; ".join(form_errors(error).values())}
        return _page(request, db, user, project_id, errors=shown, status_code=_status(error))
    return redirect(
        request,
        f"/projects/{project_id}/principles",
        notice=f"Saved {made.name!r} as version {made.version}; the earlier version is kept.",
    )


@router.post("/{principle_id}/retire")
def retire_principle(
    request: Request, db: SessionDep, user: WebStaff, project_id: int, principle_id: int
) -> Response:
    _own(db, project_id, principle_id)
    try:
        found = principles.retire_principle(db, principle_id)
    except DomainError as error:
        shown = {f"edit_{principle_id}": error.message}
        return _page(request, db, user, project_id, errors=shown, status_code=error.status_code)
    return redirect(
        request, f"/projects/{project_id}/principles", notice=f"Retired {found.name!r}."
    )


@router.post("/critique")
def start_critique(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    values: PostedForm,
) -> Response:
    get_project_checked(db, project_id)
    try:
        run = run_service.create_run(
            db, settings, project_id, critique_request(values), acting=user
        )
    except (ValidationError, DomainError) as error:
        shown: dict[str, str] = {}
        for key, text in form_errors(error).items():
            name = key.removeprefix("hyperparameters.")
            known = (*RUN_FIELDS, *SETTINGS, "principle_ids")
            shown.setdefault(f"run_{name}" if name in known else "run_form", text)
        return _page(
            request, db, user, project_id, run_values=values, errors=shown,
            status_code=_status(error),
        )  # fmt: skip
    return redirect(
        request,
        f"/runs/{run.id}",
        notice=f"Queued run {run.id}: the responses are being critiqued.",
    )


def critique_request(values: Mapping[str, str]) -> RunCreate:
    given = {name: values.get(name, "").strip() for name in (*RUN_FIELDS, *SETTINGS)}
    if not given["base_model_id"]:
        raise InvalidInput("choose the model that critiques and revises", field="base_model_id")
    hyperparameters: dict[str, Any] = {name: given[name] for name in SETTINGS if given[name]}
    # Ticked principles (use_principle_<id>); none ticked takes every current one.
    ticked = [
        name.removeprefix(USE_PRINCIPLE)
        for name, value in values.items()
        if name.startswith(USE_PRINCIPLE) and value == "on"
    ]
    if ticked:
        if not all(found.isdigit() for found in ticked):
            raise InvalidInput("principles are chosen by id", field="principle_ids")
        hyperparameters["principle_ids"] = sorted(int(found) for found in ticked)
    return RunCreate.model_validate(
        {
            "kind": RunKind.critique,
            "base_model_id": given["base_model_id"],
            "snapshot_id": given["snapshot_id"] or None,
            "hyperparameters": hyperparameters,
        }
    )


def _own(db: Session, project_id: int, principle_id: int) -> None:
    get_project_checked(db, project_id)
    if principles.get_principle(db, principle_id).project_id != project_id:
        raise NotFound(f"no principle with id {principle_id} in project {project_id}")
