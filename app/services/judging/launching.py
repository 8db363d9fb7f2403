"""Checking a judge run before it is queued, and writing the tasks its worker reads.

The worker knows nothing of the database, so everything it needs is resolved here and written
as input/tasks.jsonl: each task's response ids with the prompt and the responses' text (a
reward judge scores them), or the whole judge prompt already rendered from the project's
template and published guideline (a generative judge answers it). The judge's mode, the
template version and the guideline version are filled into the run's settings, so the run
says what it was asked with.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    ModelRole,
    Prompt,
    QueueKind,
    Response,
    Task,
    TaskResponse,
    User,
)
from app.schemas.judging import JudgeHyperparameters
from app.schemas.training import RunCreate
from app.services import registry
from app.services.generation.launching import RunInputs, one_source
from app.services.guidelines import current_guideline
from app.services.judging.templates import LETTERS, render, template_for_run
from app.services.queues import chunks, get_queue
from app.services.snapshots.reading import preference_rows
from app.settings import Settings

INPUT_FILE = "tasks.jsonl"


def plan_judging(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: dict[str, Any],
    acting: User,
) -> RunInputs:
    """The judge run's input rows; fills `params` in (mode, template_version,
    guideline_version_id). May add the project's first judge template to the session."""
    checked = JudgeHyperparameters(**params)
    if checked.guideline_version_id is not None:
        raise InvalidInput(
            "guideline_version_id is filled in at launch (the published guideline): leave it out",
            field="hyperparameters.guideline_version_id",
        )
    if data.base_model_id is None:
        raise InvalidInput(
            "a judge run names its judge as a registered model (base_model_id): every AI label "
            "records the model that made it",
            field="base_model_id",
        )
    if data.reward_model_id is not None:
        raise InvalidInput(
            "a judge run's only model is its judge (base_model_id)", field="reward_model_id"
        )
    model = registry.get_model(db, data.base_model_id)
    if model.project_id is not None and model.project_id != project_id:
        raise InvalidInput(
            f"model {model.id} belongs to project {model.project_id}", field="base_model_id"
        )
    if model.path is None:
        raise InvalidInput(f"model {model.id} has no local folder", field="base_model_id")
    registry.check_registered_folder(settings, model, field="base_model_id")
    mode = "reward" if model.role == ModelRole.reward else "generative"
    if checked.mode is not None and checked.mode != mode:
        raise InvalidInput(
            f"model {model.id} is a {model.role.value} model, so it judges in {mode} mode, "
            f"not {checked.mode}",
            field="hyperparameters.mode",
        )
    if mode == "reward" and checked.template_version is not None:
        raise InvalidInput(
            "a reward model is not prompted: template_version is for generative judges",
            field="hyperparameters.template_version",
        )
    tasks = _tasks(db, settings, project_id, data, checked)
    guideline = current_guideline(db, project_id)
    params["mode"] = mode
    params["guideline_version_id"] = guideline.id if guideline else None
    prompts = _messages(db, {prompt_id for _, prompt_id, _ in tasks})
    texts = _contents(db, [rid for _, _, ids in tasks for rid in ids])
    rows: list[dict[str, Any]] = []
    if mode == "reward":
        for task_id, prompt_id, ids in tasks:
            rows.append(
                {
                    "task_id": task_id,
                    "prompt_id": prompt_id,
                    "response_ids": ids,
                    "messages": prompts[prompt_id],
                    "contents": [texts[rid] for rid in ids],
                }
            )
        return RunInputs(INPUT_FILE, rows)
    if guideline is None:
        raise InvalidInput(
            f"project {project_id} has no published guideline, and a generative judge's "
            "rubric is built from it: publish one first",
            field="base_model_id",
        )
    template = template_for_run(db, project_id, checked.template_version, acting)
    params["template_version"] = template.version
    for task_id, prompt_id, ids in tasks:
        prompt = render(template.body, guideline.body, prompts[prompt_id], [texts[r] for r in ids])
        rows.append(
            {
                "task_id": task_id,
                "prompt_id": prompt_id,
                "response_ids": ids,
                "judge_messages": [{"role": "user", "content": prompt}],
            }
        )
    return RunInputs(INPUT_FILE, rows)


def _tasks(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: JudgeHyperparameters,
) -> list[tuple[int | None, int, list[int]]]:
    """(task id or None, prompt id, response ids in the order shown) of each task to judge."""
    one_source(
        "tasks",
        [
            ("hyperparameters.queue_id", "a comparison queue", params.queue_id),
            ("snapshot_id", "a preference snapshot", data.snapshot_id),
        ],
    )
    if params.queue_id is not None:
        found = _queue_tasks(db, project_id, params.queue_id)
        where, field = f"queue {params.queue_id}", "hyperparameters.queue_id"
    else:
        assert data.snapshot_id is not None
        found = _snapshot_tasks(db, settings, project_id, data.snapshot_id)
        where, field = f"snapshot {data.snapshot_id}", "snapshot_id"
    found = [task for task in found if len(task[2]) >= 2]
    if not found:
        raise InvalidInput(f"{where} has no task with two responses to judge", field=field)
    too_many = [task for task in found if len(task[2]) > len(LETTERS)]
    if too_many:
        raise InvalidInput(
            f"a task of {where} has {len(too_many[0][2])} responses; a judge ranks at most "
            f"{len(LETTERS)}",
            field=field,
        )
    return found[: params.task_limit] if params.task_limit else found


def _queue_tasks(
    db: Session, project_id: int, queue_id: int
) -> list[tuple[int | None, int, list[int]]]:
    queue = get_queue(db, queue_id)
    if queue.project_id != project_id:
        raise InvalidInput(
            f"queue {queue.id} belongs to another project", field="hyperparameters.queue_id"
        )
    if queue.kind != QueueKind.comparison:
        raise InvalidInput(
            f"queue {queue.id} is a demonstration queue; a judge compares responses",
            field="hyperparameters.queue_id",
        )
    rows = db.execute(
        select(Task.id, Task.prompt_id, TaskResponse.response_id)
        .join(TaskResponse, TaskResponse.task_id == Task.id)
        .where(Task.queue_id == queue.id, Task.retired_at.is_(None))
        .order_by(Task.id, TaskResponse.position)
    )
    tasks: dict[int, tuple[int | None, int, list[int]]] = {}
    for task_id, prompt_id, response_id in rows:
        tasks.setdefault(task_id, (task_id, prompt_id, []))[2].append(response_id)
    return list(tasks.values())


def _snapshot_tasks(
    db: Session, settings: Settings, project_id: int, snapshot_id: int
) -> list[tuple[int | None, int, list[int]]]:
    """A preference snapshot's tasks: the responses its rows compare, per task (rows of no
    task, imports, per prompt)."""
    groups: dict[tuple[int | None, int], dict[int, None]] = defaultdict(dict)
    for row in preference_rows(
        db, settings, project_id, snapshot_id, needed_by="a judge needs a preference snapshot"
    ):
        group = groups[(row.get("task_id"), int(row["prompt_id"]))]
        group[int(row["chosen_response_id"])] = None
        group[int(row["rejected_response_id"])] = None
    ordered = sorted(groups.items(), key=lambda item: (item[0][0] is None, item[0]))
    return [(task, prompt, sorted(ids)) for (task, prompt), ids in ordered]


def _messages(db: Session, prompt_ids: set[int]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for chunk in chunks(sorted(prompt_ids)):
        found.update(
            db.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(chunk))).all()
        )
    return found


def _contents(db: Session, response_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in chunks(sorted(set(response_ids))):
        found.update(
            db.execute(select(Response.id, Response.content).where(Response.id.in_(chunk))).all()
        )
    return found
