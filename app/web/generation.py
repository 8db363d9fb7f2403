"""The "Generate samples" page (admins and researchers): a policy answers prompts, keeping the
best of N by a reward model or all N, and each prompt can become a comparison task of a queue.

One hand-written form over the same create_run as the API (a run of kind "generate"); every
refusal comes back next to the field it names, the form filled in as posted, and nothing queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import DomainError, InvalidInput
from app.models import ModelRole, QueueKind, RunKind, User
from app.schemas.generation import GenerateHyperparameters
from app.schemas.training import RunCreate
from app.services import queues, registry, runs, snapshots
from app.services.prompts import get_project_checked
from app.web.evaluations import prompt_id_list
from app.web.rendering import form_errors, redirect, render
from app.web.runs import PostedForm

router = APIRouter()

# The run's own fields; the rest of the form is the schema's hyperparameters, by their names.
RUN_FIELDS = ("base_model_id", "reward_model_id", "snapshot_id")
# Passed to the schema as typed (it parses numbers, and a ticked checkbox's "on" as true);
# an empty field is left out, so the schema's default applies.
SETTINGS = (
    "prompt_queue_id",
    "split",
    "prompt_limit",
    "selection",
    "samples_per_prompt",
    "repeats",
    "best_of_n",
    "target_queue_id",
    "compare_model_id",
    "include_demonstration",
    "temperature",
    "top_p",
    "max_new_tokens",
    "seed",
)
FIELDS = (*RUN_FIELDS, "prompt_ids", *SETTINGS)
SCHEMA_FIELDS = GenerateHyperparameters.model_fields
# A fresh form shows the schema's defaults, so what the run would use is on the page.
DEFAULTS = {
    name: str(SCHEMA_FIELDS[name].default)
    for name in ("samples_per_prompt", "repeats", "temperature", "top_p", "max_new_tokens", "seed")
} | {"split": "all", "selection": "random"}
HINTS = {name: info.description or "" for name, info in SCHEMA_FIELDS.items()}


def generation_request(values: Mapping[str, str]) -> RunCreate:
    """The posted form as a generate run's request (checked by create_run, not here)."""
    given = {name: values.get(name, "").strip() for name in FIELDS}
    if not given["base_model_id"]:
        raise InvalidInput("choose the policy that writes the samples", field="base_model_id")
    hyperparameters: dict[str, Any] = {name: given[name] for name in SETTINGS if given[name]}
    prompt_ids = prompt_id_list(given["prompt_ids"])
    if prompt_ids is not None:
        hyperparameters["prompt_ids"] = prompt_ids
    return RunCreate.model_validate(
        {
            "kind": RunKind.generate,
            "base_model_id": given["base_model_id"],
            "reward_model_id": given["reward_model_id"] or None,
            "snapshot_id": given["snapshot_id"] or None,
            "hyperparameters": hyperparameters,
        }
    )


def shown_errors(error: ValidationError | DomainError) -> dict[str, str]:
    """Each refusal keyed by the form field it names ("hyperparameters.target_queue_id" is the
    target_queue_id field); one about several fields at once goes on top of the form."""
    shown: dict[str, str] = {}
    for key, text in form_errors(error).items():
        name = key.removeprefix("hyperparameters.")
        shown.setdefault(name if name in FIELDS else "form", text)
    return shown


def _generate_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    values: Mapping[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    models = registry.list_models(db, project_id)
    project_queues = queues.list_queues(db, project_id)
    return render(
        request,
        "generation/generate.html",
        {
            "project": project,
            "policies": [model for model in models if model.role == ModelRole.policy],
            "reward_models": [model for model in models if model.role == ModelRole.reward],
            "queues": project_queues,
            "comparison_queues": [q for q in project_queues if q.kind == QueueKind.comparison],
            # A superseded snapshot was replaced by a newer one of the same rows.
            "snapshots": [
                snapshot
                for snapshot in snapshots.list_snapshots(db, project_id)
                if snapshot.superseded_by_id is None
            ],
            "values": values if values is not None else DEFAULTS,
            "errors": errors or {},
            "hints": HINTS,
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/generate")
def generate_page(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _generate_page(request, db, user, project_id)


@router.post("/projects/{project_id}/generate")
def generate_samples(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    values: PostedForm,
) -> Response:
    get_project_checked(db, project_id)
    try:
        data = generation_request(values)
        run = runs.create_run(db, settings, project_id, data, acting=user)
    except (ValidationError, DomainError) as error:
        return _generate_page(
            request,
            db,
            user,
            project_id,
            values=values,
            errors=shown_errors(error),
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(
        request, f"/runs/{run.id}", notice=f"Queued run {run.id}: the samples are being generated."
    )
