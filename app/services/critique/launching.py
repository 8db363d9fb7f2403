"""Checking a critique run before it is queued, and the rows its worker reads.

The worker knows nothing of the database: each row names a response, its prompt's turns, its
text and one principle's exact requests, written as JSONL into the run's input folder like a
generation run's prompts (app/services/generation/launching.py). The principles taken are
recorded in the run's hyperparameters by id, so the run says which versions it used."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import ModelRole, Prompt, QueueKind, Response, Task
from app.models.queues import TaskResponse
from app.schemas.critique import CritiqueHyperparameters
from app.schemas.training import RunCreate
from app.services.generation.launching import RunInputs, checked_model, one_source
from app.services.principles import current_principles
from app.services.prompts import storable_id
from app.services.queues import chunks, get_queue
from app.services.snapshots.reading import preference_rows
from app.settings import Settings

INPUT_FILE = "critiques.jsonl"
# Critiques one run makes (responses x principles); each is two samples.
MAX_CRITIQUES_PER_RUN = 100_000


def plan_inputs(
    db: Session, settings: Settings, project_id: int, data: RunCreate, params: dict[str, Any]
) -> RunInputs:
    """The rows of a critique run; fills `params["principle_ids"]` with the versions taken."""
    checked = CritiqueHyperparameters(**params)
    if data.base_model_id is None:
        raise InvalidInput(
            "a critique run needs a registered model: every revision records the model that "
            "wrote it",
            field="base_model_id",
        )
    checked_model(db, settings, data.base_model_id, ModelRole.policy, "base_model_id")
    if data.reward_model_id is not None:
        raise InvalidInput("a critique run takes no reward model", field="reward_model_id")
    principles = current_principles(
        db, project_id, checked.principle_ids, "hyperparameters.principle_ids"
    )
    response_ids = _candidate_responses(db, settings, project_id, data, checked)
    if checked.limit is not None:
        response_ids = response_ids[: checked.limit]
    rng = random.Random(checked.seed)
    chosen = [
        (response_id, principle)
        for response_id in response_ids
        for principle in (
            principles if checked.principle_choice == "each" else [rng.choice(principles)]
        )
    ]
    if len(chosen) > MAX_CRITIQUES_PER_RUN:
        raise InvalidInput(
            f"{len(response_ids)} responses x {len(principles)} principles is {len(chosen)} "
            f"critiques; one run makes at most {MAX_CRITIQUES_PER_RUN}: set limit",
            field="hyperparameters.limit",
        )
    params["principle_ids"] = [principle.id for principle in principles]
    texts = _responses(db, response_ids)
    prompts = _prompt_messages(db, sorted({prompt_id for prompt_id, _ in texts.values()}))
    return RunInputs(
        INPUT_FILE,
        [
            {
                "response_id": response_id,
                "prompt": prompts[texts[response_id][0]],
                "content": texts[response_id][1],
                "principle_id": principle.id,
                "critique_request": principle.critique_request,
                "revision_request": principle.revision_request,
            }
            for response_id, principle in chosen
        ],
    )


def _candidate_responses(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: CritiqueHyperparameters,
) -> list[int]:
    one_source(
        "responses",
        [
            ("hyperparameters.queue_id", "a comparison queue", params.queue_id),
            ("snapshot_id", "a preference snapshot", data.snapshot_id),
            ("hyperparameters.response_ids", "a list", params.response_ids),
        ],
    )
    if params.queue_id is not None:
        queue = get_queue(db, params.queue_id)
        field = "hyperparameters.queue_id"
        if queue.project_id != project_id:
            raise InvalidInput(f"queue {queue.id} belongs to another project", field=field)
        if queue.kind != QueueKind.comparison:
            raise InvalidInput(
                f"queue {queue.id} is a demonstration queue: its tasks show no responses",
                field=field,
            )
        rows = db.scalars(
            select(TaskResponse.response_id)
            .join(Task, Task.id == TaskResponse.task_id)
            .where(Task.queue_id == queue.id, Task.retired_at.is_(None))
            .order_by(Task.id, TaskResponse.position)
        )
        found, where = list(dict.fromkeys(rows)), f"queue {queue.id}'s tasks"
    elif data.snapshot_id is not None:
        found, field = (
            _snapshot_responses(db, settings, project_id, data.snapshot_id),
            "snapshot_id",
        )
        where = f"snapshot {data.snapshot_id}"
    else:
        assert params.response_ids is not None
        found, field, where = list(params.response_ids), "hyperparameters.response_ids", "the list"
    if not found:
        raise InvalidInput(f"there are no responses in {where}", field=field)
    _check_in_project(db, project_id, found, field)
    return found


def _snapshot_responses(
    db: Session, settings: Settings, project_id: int, snapshot_id: int
) -> list[int]:
    found: dict[int, None] = {}
    for row in preference_rows(
        db,
        settings,
        project_id,
        snapshot_id,
        needed_by="a critique run takes the responses of a preference snapshot",
    ):
        for key in ("chosen_response_id", "rejected_response_id"):
            if row.get(key) is not None:
                found[int(row[key])] = None
    return list(found)


def _check_in_project(
    db: Session, project_id: int, response_ids: Sequence[int], field: str
) -> None:
    known: set[int] = set()
    for chunk in chunks([rid for rid in response_ids if storable_id(rid)]):
        known.update(
            db.scalars(
                select(Response.id)
                .join(Prompt, Prompt.id == Response.prompt_id)
                .where(Response.id.in_(chunk), Prompt.project_id == project_id)
            )
        )
    missing = [rid for rid in response_ids if rid not in known]
    if missing:
        shown = ", ".join(str(rid) for rid in missing[:5])
        raise InvalidInput(
            f"{len(missing)} response(s) are not responses of project {project_id}: {shown}",
            field=field,
        )


def _responses(db: Session, response_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    found: dict[int, tuple[int, str]] = {}
    for chunk in chunks(list(response_ids)):
        rows = db.execute(
            select(Response.id, Response.prompt_id, Response.content).where(Response.id.in_(chunk))
        )
        found.update({rid: (prompt_id, content) for rid, prompt_id, content in rows})
    return found


def _prompt_messages(db: Session, prompt_ids: Sequence[int]) -> dict[int, Any]:
    messages: dict[int, Any] = {}
    for chunk in chunks(list(prompt_ids)):
        rows = db.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(chunk)))
        messages.update({prompt_id: value for prompt_id, value in rows})
    return messages
