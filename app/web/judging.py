"""AI judges in the browser (admins and researchers): the launch form of a judge run (reached
from a comparison queue's page or a preference snapshot's page), the judge template's versions,
and sending a judge's disagreements back for a human label from the agreement page.

Hand-written forms over the same services as the API: a judge run is create_run's kind
"judge"; every refusal comes back next to the field it names, and nothing is queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import DomainError, InvalidInput
from app.models import QueueKind, RunKind, SnapshotKind, User
from app.schemas import common
from app.schemas.judging import JudgeHyperparameters, JudgeTemplateCreate
from app.schemas.training import RunCreate
from app.services import queues, registry, runs, snapshots
from app.services.judging import sending, templates
from app.services.prompts import get_project_checked
from app.web.generation import shown_errors
from app.web.rendering import form_errors, redirect, render
from app.web.runs import PostedForm

router = APIRouter()

SETTINGS = ("queue_id", "template_version", "task_limit", "max_new_tokens")
HINTS = {name: info.description or "" for name, info in JudgeHyperparameters.model_fields.items()}


def judge_request(values: Mapping[str, str]) -> RunCreate:
    """The posted form as a judge run's request (checked by create_run, not here)."""
    given = {name: values.get(name, "").strip() for name in (*SETTINGS, "model_id", "snapshot_id")}
    if not given["model_id"]:
        raise InvalidInput("choose the judge model", field="base_model_id")
    return RunCreate.model_validate(
        {
            "kind": RunKind.judge,
            "base_model_id": given["model_id"],
            "snapshot_id": given["snapshot_id"] or None,
            "hyperparameters": {name: given[name] for name in SETTINGS if given[name]},
        }
    )


def _judge_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    values: Mapping[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    return render(
        request,
        "judging/launch.html",
        {
            "project": project,
            "models": registry.list_models(db, project_id),
            "queues": [
                q for q in queues.list_queues(db, project_id) if q.kind == QueueKind.comparison
            ],
            "snapshots": [
                s
                for s in snapshots.list_snapshots(db, project_id)
                if s.kind == SnapshotKind.preference and s.superseded_by_id is None
            ],
            "templates": templates.list_templates(db, project_id),
            "values": values,
            "errors": errors or {},
            "hints": HINTS,
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/judge")
def judge_page(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    queue_id: common.Text = "",
    snapshot_id: common.Text = "",
) -> Response:
    return _judge_page(
        request, db, user, project_id, values={"queue_id": queue_id, "snapshot_id": snapshot_id}
    )


@router.post("/projects/{project_id}/judge")
def launch_judge(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    values: PostedForm,
) -> Response:
    get_project_checked(db, project_id)
    try:
        run = runs.create_run(db, settings, project_id, judge_request(values), acting=user)
    except (ValidationError, DomainError) as error:
        shown = {
            ("model_id" if key == "base_model_id" else key): text
            for key, text in shown_errors(error).items()
        }
        for key, text in form_errors(error).items():
            name = key.removeprefix("hyperparameters.")
            if name in SETTINGS:
                shown[name] = text
        return _judge_page(
            request, db, user, project_id, values=values, errors=shown,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )  # fmt: skip
    return redirect(
        request,
        f"/runs/{run.id}",
        notice=f"Queued judge run {run.id}: its labels come as AI labels.",
    )


def _templates_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    body: str | None = None,
    note: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    found = templates.list_templates(db, project_id)
    return render(
        request,
        "judging/templates.html",
        {
            "project": project,
            "templates": found,
            "body": body
            if body is not None
            else (found[0].body if found else templates.DEFAULT_TEMPLATE),
            "note": note,
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/judge-templates")
def templates_page(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _templates_page(request, db, user, project_id)


@router.post("/projects/{project_id}/judge-templates")
def save_template(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    body: Annotated[common.Text, Form(max_length=30_000)] = "",
    note: Annotated[common.Text, Form(max_length=1000)] = "",
) -> Response:
    try:
        saved = templates.save_template(
            db, project_id, JudgeTemplateCreate(body=body, note=note), user
        )
    except (ValidationError, DomainError) as error:
        errors = {key.removeprefix("body."): text for key, text in form_errors(error).items()}
        return _templates_page(
            request, db, user, project_id, body=body, note=note, errors=errors,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )  # fmt: skip
    return redirect(
        request,
        f"/projects/{project_id}/judge-templates",
        notice=f"Saved judge template version {saved.version}.",
    )


@router.post("/projects/{project_id}/agreement/judges/send-back")
def send_back(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    task_id: Annotated[list[common.Text] | None, Form()] = None,
) -> Response:
    wanted = [value.strip() for value in task_id or []]
    if not wanted or not all(value.isdigit() for value in wanted):
        raise InvalidInput("tick at least one task to send back", field="task_id")
    sent = sending.send_back_tasks(db, project_id, [int(value) for value in wanted])
    return redirect(
        request,
        f"/projects/{project_id}/agreement#judges",
        notice=f"Sent {len(sent)} tasks back: each waits for one more human label.",
    )
