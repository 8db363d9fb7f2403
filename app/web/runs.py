"""Training pages (admins and researchers): a project's runs with the launch form and the model
registry, and one run's page whose live part polls itself until the run is finished.

The launch form is generated from the kind's hyperparameter schema (app/schemas/runs.py), so a
field added there appears here; everything posted is checked by the same create_run as the API.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import Conflict, DomainError, InvalidInput
from app.models import ModelRole, Run, RunKind, RunMetric, RunStatus, User
from app.models.base import utcnow
from app.schemas import common
from app.schemas.runs import HYPERPARAMETERS
from app.schemas.training import ModelRegister, RunCreate
from app.services import registry, runs, snapshots
from app.services.prompts import get_project_checked
from app.services.runs.launching import NEEDS_REWARD_MODEL, SNAPSHOT_KIND
from app.settings import Settings
from app.web.charts import LineChart, line_chart
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

Text = Annotated[common.Text, Form(max_length=1000)]
QueryText = Annotated[common.Text, Query(max_length=500)]

# Training kinds, in the order of the loop; generation runs start from a queue instead.
# Generation, score, judge and critique runs have their own forms; this page launches training.
OWN_FORMS = (RunKind.generate, RunKind.score, RunKind.judge, RunKind.critique)
KINDS = [kind.value for kind in RunKind if kind not in OWN_FORMS]
LIVE = (RunStatus.queued, RunStatus.running)
# The launch form's fields other than hyperparameters; an error elsewhere shows at the top.
COMMON_FIELDS = ("kind", "base_model_id", "base_model_ref", "snapshot_id", "reward_model_id")
HP = "hp."
# The hyperparameters the form leads with, beside kind, base model and snapshot; the rest wait
# under "Advanced", since the job picks sound values for them from the model and device.
LEAD_HYPERPARAMETERS = ("max_steps",)
# Charts on the run page: which logged names go on which. TRL logs "loss", "eval_loss",
# "loss/policy_avg" (PPO), "rewards/margins", "objective/rlhf_reward", "reward"...
CHARTS = (("loss", "Loss"), ("learning-rate", "Learning rate"), ("reward", "Reward"))


# --- the launch form, from the kind's schema --------------------------------------------------


@dataclass(frozen=True)
class ParamField:
    name: str  # the form field: "hp.learning_rate", "hp.lora.r"
    error_key: str  # where create_run's refusal points: "hyperparameters.learning_rate"
    label: str
    hint: str
    placeholder: str
    choices: list[tuple[str, str]] | None  # None: a text box
    is_list: bool = False  # comma-separated in the form
    is_group: bool = False  # on/off for a nested settings object (LoRA)
    is_lead: bool = False  # shown first, outside "Advanced"

    @property
    def element_id(self) -> str:
        return self.name.replace(".", "-")


def _default_text(default: Any) -> str:
    if default is None or default is PydanticUndefined:
        return "the job picks"
    if isinstance(default, bool):
        return "on" if default else "off"
    if default == []:
        return "none"
    return str(default)


def param_fields(schema: type[BaseModel], prefix: str = "") -> list[ParamField]:
    """One field per schema field; a nested model becomes an on/off choice and its fields."""
    found: list[ParamField] = []
    for name, info in schema.model_fields.items():
        path = prefix + name
        annotation = info.annotation
        if get_origin(annotation) in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = options[0] if len(options) == 1 else annotation
        default = _default_text(info.default)
        hint = f"{info.description or ''} Default: {default}.".strip()
        placeholder = ""
        choices: list[tuple[str, str]] | None = None
        is_list = is_group = False
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            hint, choices, is_group = info.description or "", [("", "off"), ("on", "on")], True
        elif annotation is bool:
            choices = [("", f"default ({default})"), ("true", "on"), ("false", "off")]
        elif get_origin(annotation) is Literal:
            choices = [("", f"default ({default})")]
            choices += [(str(value), str(value)) for value in get_args(annotation)]
        else:
            placeholder = default
            is_list = get_origin(annotation) is list
            hint = f"{hint} Separate names with commas." if is_list else hint
        found.append(
            ParamField(
                name=HP + path,
                error_key=f"hyperparameters.{path}",
                # In words (the schema's title), not the field's snake_case name.
                label=info.title or name.replace("_", " ").capitalize(),
                hint=hint,
                placeholder=placeholder,
                choices=choices,
                is_list=is_list,
                is_group=is_group,
                is_lead=path in LEAD_HYPERPARAMETERS,
            )
        )
        if is_group:
            assert isinstance(annotation, type)
            found.extend(param_fields(annotation, prefix=f"{path}."))
    return found


def posted_hyperparameters(values: Mapping[str, str], fields: list[ParamField]) -> dict[str, Any]:
    """The filled-in hp.* fields as the schema's input; an empty field is left to the job.
    Unknown names are passed on, so the schema refuses them by name."""
    lists = {field.name for field in fields if field.is_list}
    groups = {field.name for field in fields if field.is_group}
    given: dict[str, Any] = {}
    for name, raw in values.items():
        value = raw.strip()
        if not name.startswith(HP) or name in groups or not value:
            continue
        parsed: Any = value
        if name in lists:
            parsed = [part.strip() for part in value.split(",") if part.strip()]
        head, _, rest = name.removeprefix(HP).partition(".")
        if not rest:
            given[head] = parsed
            continue
        group = given.setdefault(head, {})
        if not isinstance(group, dict):
            raise InvalidInput(
                f"hyperparameters.{head}: {head} takes no settings of its own",
                field=f"hyperparameters.{head}",
            )
        group[rest] = parsed
    for group_name in groups:
        key = group_name.removeprefix(HP)
        switch = values.get(group_name, "").strip()
        if switch not in ("", "on"):
            raise InvalidInput(
                f"hyperparameters.{key}: choose on or off", field=f"hyperparameters.{key}"
            )
        if switch == "on":
            given.setdefault(key, {})
        elif key in given:
            raise InvalidInput(
                f"hyperparameters.{key}: turn {key} on to give its settings",
                field=f"hyperparameters.{key}",
            )
    return given


async def posted_form(request: Request) -> dict[str, str]:
    """The launch form as posted (its field names depend on the kind, so no Form(...))."""
    form = await request.form()
    found: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise InvalidInput(f"{name} must be text, not a file", field="form")
        found[name] = value
    return found


PostedForm = Annotated[dict[str, str], Depends(posted_form)]


def run_create(kind: str, values: Mapping[str, str], fields: list[ParamField]) -> RunCreate:
    def given(name: str) -> str | None:
        return values.get(name, "").strip() or None

    return RunCreate.model_validate(
        {
            "kind": kind,
            "base_model_id": given("base_model_id"),
            "base_model_ref": given("base_model_ref"),
            "snapshot_id": given("snapshot_id"),
            "reward_model_id": given("reward_model_id"),
            "hyperparameters": posted_hyperparameters(values, fields),
            "max_attempts": given("max_attempts") or 3,
        }
    )


# --- a project's runs ---------------------------------------------------------------------------


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(
            f"{kind[:20]!r} is not a training run kind; choose one of {', '.join(KINDS)}",
            field="kind",
        )
    return kind


def _runs_page(
    request: Request,
    db: Session,
    settings: Settings,
    user: User,
    project_id: int,
    *,
    kind: str = "sft",
    values: Mapping[str, str] | None = None,
    launch_errors: dict[str, str] | None = None,
    register_values: Mapping[str, str] | None = None,
    register_errors: dict[str, str] | None = None,
    block: str | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    models = registry.list_models(db, project_id)
    found = runs.list_runs(db, project_id)
    every_snapshot = snapshots.list_snapshots(db, project_id)
    wanted = SNAPSHOT_KIND[RunKind(kind)]
    return render(
        request,
        "runs/list.html",
        {
            "project": project,
            "runs": found,
            "models": {model.id: model for model in models},
            "snapshots": {snapshot.id: snapshot for snapshot in every_snapshot},
            "kinds": KINDS,
            "kind": kind,
            "fields": param_fields(HYPERPARAMETERS[kind]),
            "policies": [model for model in models if model.role == ModelRole.policy],
            "reward_models": [model for model in models if model.role == ModelRole.reward],
            "needs_reward_model": RunKind(kind) in NEEDS_REWARD_MODEL,
            # The kind's snapshots that are still current: a superseded one was replaced.
            "kind_snapshots": [
                snapshot
                for snapshot in every_snapshot
                if snapshot.kind == wanted and snapshot.superseded_by_id is None
            ],
            "snapshot_kind": wanted.value,
            "values": values or {"max_attempts": "3"},
            "launch_errors": launch_errors or {},
            "register_values": register_values or {"role": ModelRole.policy.value},
            "register_errors": register_errors or {},
            "lineage": registry.lineage(db, project_id),
            "model_folders": settings.model_folders,
        },
        user=user,
        block=block,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/runs")
def runs_page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    kind: QueryText = "sft",
) -> Response:
    return _runs_page(request, db, settings, user, project_id, kind=_checked_kind(kind))


@router.get("/projects/{project_id}/runs/launch-form")
def launch_form(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    kind: QueryText = "sft",
    base_model_id: QueryText = "",
    base_model_ref: QueryText = "",
    max_attempts: QueryText = "3",
) -> Response:
    """The launch form for another kind (the kind select swaps it in), keeping the base model
    and attempts already chosen."""
    values = {
        "base_model_id": base_model_id,
        "base_model_ref": base_model_ref,
        "max_attempts": max_attempts,
    }
    return _runs_page(
        request,
        db,
        settings,
        user,
        project_id,
        kind=_checked_kind(kind),
        values=values,
        block="launch_form",
    )


@router.post("/projects/{project_id}/runs")
def launch_run(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    values: PostedForm,
) -> Response:
    get_project_checked(db, project_id)
    kind = values.get("kind", "").strip()
    shown = kind if kind in KINDS else "sft"
    fields = param_fields(HYPERPARAMETERS[shown])
    try:
        data = run_create(_checked_kind(kind), values, fields)
        run = runs.create_run(db, settings, project_id, data, acting=user)
    except (ValidationError, DomainError) as error:
        errors = form_errors(error)
        # A refusal about a field the form does not show (a misspelt name) goes on top.
        shown_keys = {*COMMON_FIELDS, "max_attempts", *(field.error_key for field in fields)}
        errors = {(key if key in shown_keys else "form"): text for key, text in errors.items()}
        return _runs_page(
            request,
            db,
            settings,
            user,
            project_id,
            kind=shown,
            values=values,
            launch_errors=errors,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(request, f"/runs/{run.id}", notice=f"Queued run {run.id} ({run.kind.value}).")


@router.post("/projects/{project_id}/models")
def register_model(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    name: Text = "",
    role: Text = "policy",
    path: Text = "",
    base_model_id: Text = "",
) -> Response:
    values = {"name": name, "role": role, "path": path, "base_model_id": base_model_id}
    get_project_checked(db, project_id)
    try:
        if not path.strip():
            raise InvalidInput(
                "give the model's folder: absolute, or relative to the data folder", field="path"
            )
        data = ModelRegister.model_validate(
            {
                "name": name,
                "role": role.strip(),
                "path": path.strip(),
                "base_model_id": base_model_id.strip() or None,
            }
        )
        model = registry.register_model(db, settings, data, acting=user, project_id=project_id)
    except (ValidationError, DomainError) as error:
        return _runs_page(
            request,
            db,
            settings,
            user,
            project_id,
            register_values=values,
            register_errors=form_errors(error),
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(
        request, f"/projects/{project_id}/runs#registry", notice=f"Registered {model.name}."
    )


# --- one run ----------------------------------------------------------------------------------


def chart_for(name: str) -> str | None:
    if "reward" in name:
        return "reward"
    if "loss" in name:
        return "loss"
    if name == "learning_rate":
        return "learning-rate"
    return None


def metric_charts(rows: list[RunMetric]) -> list[tuple[str, str, LineChart | None]]:
    """(slug, title, chart or None when nothing of it was logged) for each chart, its series
    in the order their names were first logged."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {slug: {} for slug, _ in CHARTS}
    for row in rows:
        for name, value in row.values.items():
            slug = chart_for(name)
            if slug is not None and isinstance(value, int | float):
                series[slug].setdefault(name, []).append((float(row.step), float(value)))
    return [
        (slug, title, line_chart(list(series[slug].items())) if series[slug] else None)
        for slug, title in CHARTS
    ]


def shown_value(value: Any) -> str:
    if value is None:
        return "— (the job picks)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def metric_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Logged values by name, floats to 6 significant digits (a float's last digits are noise)."""
    return [
        (name, f"{value:.6g}" if isinstance(value, float) else str(value))
        for name, value in sorted(values.items())
    ]


def chosen_settings(run: Run) -> list[tuple[str, str, str]]:
    """What the job trained with: (name, value, why), from the settings it recorded."""
    used = dict(run.artifacts.get("settings") or {})
    reasons = used.pop("reasons", {}) or {}
    return [(name, shown_value(value), str(reasons.get(name, ""))) for name, value in used.items()]


def size_text(count: int) -> str:
    """Bytes in decimal units, as the hub shows model sizes."""
    if count < 1000:
        return f"{count} B"
    value = count / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def download_lines(run: Run) -> list[tuple[str, str]]:
    """(hub name, how far it is) for each model the run downloads from the hub
    (worker/hub.py): bytes and files so far, then where it ended."""
    lines = []
    for name, item in sorted((run.artifacts.get("downloads") or {}).items()):
        files = f"{item.get('files_done', 0)} of {item.get('files_total', 0)} files"
        size = size_text(int(item.get("bytes_done", 0)))
        if item.get("state") == "cached":
            text = f"in the model cache ({files}), nothing downloaded"
        elif item.get("state") == "done":
            text = f"downloaded, {size} ({files})"
        else:
            total = int(item.get("bytes_total", 0))
            text = f"downloading: {size} of {size_text(total)}, {files}"
        lines.append((name, text))
    return lines


def duration(run: Run) -> str | None:
    """How long the run ran (or has been running); nothing while it waits in the queue."""
    start, end = run.started_at, run.finished_at
    if start is None or run.status == RunStatus.queued:
        return None
    seconds = int(((end or utcnow()) - start).total_seconds())
    hours, rest = divmod(max(seconds, 0), 3600)
    return (
        f"{hours} h {rest // 60} min {rest % 60} s" if hours else f"{rest // 60} min {rest % 60} s"
    )


def _run_page(
    request: Request,
    db: Session,
    user: User,
    run_id: int,
    *,
    block: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    run = runs.get_run(db, run_id)
    model_ids = (run.base_model_id, run.reward_model_id, run.output_model_id)
    context: dict[str, Any] = {
        "run": run,
        "project": get_project_checked(db, run.project_id),
        "models": {i: registry.get_model(db, i) for i in model_ids if i is not None},
        "snapshot": snapshots.get_snapshot(db, run.snapshot_id) if run.snapshot_id else None,
        "live": run.status in LIVE,
        "charts": metric_charts(runs.run_metrics(db, run_id)),
        "latest": metric_rows(run.metrics.get("train") or {}),
        "evaluation": metric_rows(run.metrics.get("eval") or {}),
        "chosen": chosen_settings(run),
        "downloads": download_lines(run),
        "hyperparameters": [(k, shown_value(v)) for k, v in sorted(run.hyperparameters.items())],
        "took": duration(run),
        "can_resume": run.status in (RunStatus.failed, RunStatus.cancelled)
        and run.attempts < run.max_attempts,
    }
    if notice is not None:
        context["notice"] = notice
    return render(
        request,
        "runs/detail.html",
        context,
        block=block,
        user=user,
        status_code=status_code,
        no_store=True,
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, db: SessionDep, user: WebStaff, run_id: int) -> Response:
    return _run_page(request, db, user, run_id)


@router.get("/runs/{run_id}/live")
def run_live(request: Request, db: SessionDep, user: WebStaff, run_id: int) -> Response:
    """The live part alone, which polls itself while the run is queued or running."""
    return _run_page(request, db, user, run_id, block="live")


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, db: SessionDep, user: WebStaff, run_id: int) -> Response:
    try:
        run = runs.request_cancel(db, run_id, acting=user)
    except Conflict as error:
        return _run_page(request, db, user, run_id, notice=error.message, status_code=409)
    if run.status == RunStatus.cancelled:
        notice = f"Cancelled run {run.id} before it started."
    else:
        notice = f"Cancel requested: run {run.id} stops at its worker's next step."
    return redirect(request, f"/runs/{run.id}", notice=notice)


@router.post("/runs/{run_id}/resume")
def resume_run(
    request: Request, db: SessionDep, settings: SettingsDep, user: WebStaff, run_id: int
) -> Response:
    try:
        run = runs.resume_run(db, settings, run_id, acting=user)
    except Conflict as error:
        return _run_page(request, db, user, run_id, notice=error.message, status_code=409)
    return redirect(
        request,
        f"/runs/{run.id}",
        notice=f"Run {run.id} is queued again (attempt {run.attempts + 1} of {run.max_attempts}).",
    )
