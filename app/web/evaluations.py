"""Evaluation pages (admins and researchers): a project's side-by-side evaluations with the form
that starts one, one evaluation's result with its interval, and the project's rounds of the
loop. Labelers never see these: they judge the evaluation's tasks blind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import DomainError, InvalidInput
from app.models import ModelRole, User
from app.schemas import common
from app.schemas.evaluations import EvaluationCreate, EvaluationResult
from app.services import evaluations, registry, rounds, runs, snapshots
from app.services.prompts import get_project_checked
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

Text = Annotated[common.Text, Form(max_length=100_000)]
# The form's fields, with what an empty one means (None: left to the schema's default).
FIELDS = (
    "name",
    "model_a_id",
    "model_b_id",
    "snapshot_id",
    "prompt_ids",
    "repeats",
    "overlap",
    "max_new_tokens",
    "temperature",
    "seed",
    "baseline_best_of",
    "reward_model_id",
)
DEFAULTS = {
    "repeats": "1",
    "overlap": "1",
    "max_new_tokens": "32",
    "temperature": "1.0",
    "seed": "0",
    "baseline_best_of": "1",
}


@dataclass(frozen=True)
class Bar:
    """Where a result's win rate and interval fall on a 0..100 scale, for an SVG bar."""

    rate: float
    low: float
    high: float


def bar(result: EvaluationResult) -> Bar | None:
    if result.win_rate is None or result.ci_low is None or result.ci_high is None:
        return None
    return Bar(100 * result.win_rate, 100 * result.ci_low, 100 * result.ci_high)


def prompt_id_list(text: str) -> list[int] | None:
    """Prompt ids as typed: separated by commas, spaces or lines; empty means none."""
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    if not all(part.isdigit() for part in parts):
        raise InvalidInput("prompt ids are whole numbers, separated by commas", field="prompt_ids")
    return [int(part) for part in parts]


def evaluation_create(values: Mapping[str, str]) -> EvaluationCreate:
    given = {name: values.get(name, "").strip() for name in FIELDS}
    data: dict[str, Any] = {name: value for name, value in given.items() if value}
    data.pop("prompt_ids", None)
    ids = prompt_id_list(given["prompt_ids"])
    if ids is not None:
        data["prompt_ids"] = ids
    return EvaluationCreate.model_validate(data)


def _list_page(
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
    found = [
        evaluations.evaluation_out(db, evaluation)
        for evaluation in evaluations.list_evaluations(db, project_id)
    ]
    return render(
        request,
        "evaluations/list.html",
        {
            "project": project,
            "evaluations": [(out, bar(out.result)) for out in found],
            "policies": [
                model
                for model in registry.list_models(db, project_id)
                if model.role == ModelRole.policy
            ],
            "reward_models": [
                model
                for model in registry.list_models(db, project_id)
                if model.role == ModelRole.reward
            ],
            # Current snapshots that hold prompts back for testing.
            "held_out": [
                snapshot
                for snapshot in snapshots.list_snapshots(db, project_id)
                if snapshot.superseded_by_id is None and snapshot.row_counts.get("test", 0) > 0
            ],
            "values": values or DEFAULTS,
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/evaluations")
def evaluations_page(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _list_page(request, db, user, project_id)


def posted_values(
    name: Text = "",
    model_a_id: Text = "",
    model_b_id: Text = "",
    snapshot_id: Text = "",
    prompt_ids: Text = "",
    repeats: Text = "",
    overlap: Text = "",
    max_new_tokens: Text = "",
    temperature: Text = "",
    seed: Text = "",
    baseline_best_of: Text = "",
    reward_model_id: Text = "",
) -> dict[str, str]:
    """The start form as posted, kept as typed so a refused form comes back filled in."""
    return {
        "name": name,
        "model_a_id": model_a_id,
        "model_b_id": model_b_id,
        "snapshot_id": snapshot_id,
        "prompt_ids": prompt_ids,
        "repeats": repeats,
        "overlap": overlap,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seed": seed,
        "baseline_best_of": baseline_best_of,
        "reward_model_id": reward_model_id,
    }


@router.post("/projects/{project_id}/evaluations")
def start_evaluation(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    values: Annotated[dict[str, str], Depends(posted_values)],
) -> Response:
    get_project_checked(db, project_id)
    try:
        data = evaluation_create(values)
        evaluation = evaluations.create_evaluation(db, settings, project_id, data, acting=user)
    except (ValidationError, DomainError) as error:
        errors = form_errors(error)
        # A refusal about the generation run's settings goes on top of the form.
        errors = {(key if key in FIELDS else "form"): text for key, text in errors.items()}
        return _list_page(
            request,
            db,
            user,
            project_id,
            values=values,
            errors=errors,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(
        request,
        f"/evaluations/{evaluation.id}",
        notice=f"Started evaluation {evaluation.id}: its answers are being generated.",
    )


@router.get("/evaluations/{evaluation_id}")
def evaluation_page(
    request: Request, db: SessionDep, user: WebStaff, evaluation_id: int
) -> Response:
    evaluation = evaluations.get_evaluation(db, evaluation_id)
    out = evaluations.evaluation_out(db, evaluation)
    return render(
        request,
        "evaluations/detail.html",
        {
            "project": get_project_checked(db, evaluation.project_id),
            "evaluation": out,
            "bar": bar(out.result),
            "run": runs.get_run(db, out.run_id) if out.run_id is not None else None,
        },
        user=user,
        no_store=True,
    )


@router.get("/projects/{project_id}/rounds")
def rounds_page(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    project = get_project_checked(db, project_id)
    return render(
        request,
        "evaluations/rounds.html",
        {
            "project": project,
            "rounds": rounds.project_rounds(db, project_id),
            "models": {model.id: model for model in registry.list_models(db, project_id)},
        },
        user=user,
    )
