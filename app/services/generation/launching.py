"""Checking a generation or score run before it is queued, and writing what its worker reads.

The worker knows nothing of the database, so the prompts to answer (or the responses to score)
are resolved here, at launch, and written as JSONL into the run's input folder
(`<data_dir>/runs/<id>/input/`). Every bad input is refused here with a sentence: a model that
does not exist or has the wrong role, a queue of another project or kind, prompts from nowhere.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    ModelRole,
    Prompt,
    QueueKind,
    Response,
    RunKind,
    Snapshot,
    Task,
)
from app.schemas.generation import GenerateHyperparameters, ScoreHyperparameters
from app.schemas.training import RunCreate
from app.services import registry
from app.services.generation.selection import most_disputed
from app.services.prompts import storable_id
from app.services.queues import chunks, get_queue
from app.settings import Settings

SAMPLING_KINDS = {RunKind.generate, RunKind.score}
# Samples one run may draw (prompts x repeats x samples): beyond this, split the work.
MAX_SAMPLES_PER_RUN = 200_000
INPUT_FILE = {RunKind.generate: "prompts.jsonl", RunKind.score: "responses.jsonl"}


def one_source(what: str, sources: Sequence[tuple[str, str, object]]) -> str:
    """The field of the one source given among `sources` ((field, what it is, its value; None
    when not given)); else an InvalidInput listing them all, on the second given (or the first
    listed when none is)."""
    given = [field for field, _, value in sources if value is not None]
    if len(given) != 1:
        listed = [f"{kind} ({field})" for field, kind, _ in sources]
        options = f"{', '.join(listed[:-1])} or {listed[-1]}"
        raise InvalidInput(
            f"take the {what} from exactly one of: {options}",
            field=given[1] if given else sources[0][0],
        )
    return given[0]


@dataclass
class RunInputs:
    file_name: str
    rows: list[dict[str, Any]]


def plan_inputs(
    db: Session, settings: Settings, project_id: int, data: RunCreate, params: dict[str, Any]
) -> RunInputs:
    """The checked inputs of a generate or score run (its hyperparameters already validated)."""
    if data.kind == RunKind.generate:
        return _plan_generation(db, settings, project_id, data, GenerateHyperparameters(**params))
    return _plan_scoring(db, settings, project_id, data, ScoreHyperparameters(**params))


def write_inputs(settings: Settings, run_id: int, inputs: RunInputs) -> None:
    folder = settings.data_dir / "runs" / str(run_id) / "input"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / inputs.file_name).open("w", encoding="utf-8") as handle:
        for row in inputs.rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def checked_model(
    db: Session, settings: Settings, model_id: int, role: ModelRole, field: str
) -> Model:
    """A registered model of `role` whose local folder holds loadable weights."""
    model = registry.get_model(db, model_id)
    if model.role != role:
        raise InvalidInput(
            f"model {model.id} is a {model.role.value} model, not a {role.value} model",
            field=field,
        )
    if model.path is None:
        raise InvalidInput(f"model {model.id} has no local folder", field=field)
    registry.check_registered_folder(settings, model, field=field)
    return model


def _plan_generation(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: GenerateHyperparameters,
) -> RunInputs:
    if data.base_model_id is None:
        raise InvalidInput(
            "generation needs a registered model: every response records the model that wrote it",
            field="base_model_id",
        )
    checked_model(db, settings, data.base_model_id, ModelRole.policy, "base_model_id")
    needs_reward = (
        params.best_of_n or params.selection == "reward_gap" or params.compare_best_of > 1
    )
    if data.reward_model_id is not None:
        checked_model(db, settings, data.reward_model_id, ModelRole.reward, "reward_model_id")
    elif needs_reward:
        what = (
            "best_of_n"
            if params.best_of_n
            else "compare_best_of"
            if params.compare_best_of > 1
            else "selection reward_gap"
        )
        raise InvalidInput(f"{what} needs a reward model", field="reward_model_id")
    if params.compare_model_id is not None:
        if params.compare_model_id == data.base_model_id:
            raise InvalidInput(
                "compare_model_id names the model that is generating: compare two different models",
                field="hyperparameters.compare_model_id",
            )
        checked_model(
            db, settings, params.compare_model_id, ModelRole.policy,
            "hyperparameters.compare_model_id",
        )  # fmt: skip
    if params.target_queue_id is not None:
        queue = get_queue(db, params.target_queue_id)
        if queue.project_id != project_id:
            raise InvalidInput(
                f"queue {queue.id} belongs to another project",
                field="hyperparameters.target_queue_id",
            )
        if queue.kind != QueueKind.comparison:
            raise InvalidInput(
                f"queue {queue.id} is a demonstration queue; samples go to a comparison queue",
                field="hyperparameters.target_queue_id",
            )
    prompt_ids = _candidate_prompts(db, settings, project_id, data, params)
    prompt_ids = _select(db, params, prompt_ids)
    total = len(prompt_ids) * params.repeats * params.samples_per_prompt
    if total > MAX_SAMPLES_PER_RUN:
        raise InvalidInput(
            f"{len(prompt_ids)} prompts x {params.repeats} repeats x {params.samples_per_prompt} "
            f"samples is {total} samples; one run draws at most {MAX_SAMPLES_PER_RUN}: set "
            "prompt_limit",
            field="hyperparameters.prompt_limit",
        )
    messages = _prompt_messages(db, prompt_ids)
    return RunInputs(
        INPUT_FILE[RunKind.generate],
        [{"prompt_id": prompt_id, "messages": messages[prompt_id]} for prompt_id in prompt_ids],
    )


def _candidate_prompts(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: GenerateHyperparameters,
) -> list[int]:
    one_source(
        "prompts",
        [
            ("snapshot_id", "a snapshot", data.snapshot_id),
            ("hyperparameters.prompt_queue_id", "a queue", params.prompt_queue_id),
            ("hyperparameters.prompt_ids", "a list", params.prompt_ids),
        ],
    )
    if data.snapshot_id is None and params.split != "all":
        raise InvalidInput(
            "split chooses part of a snapshot: give a snapshot_id", field="hyperparameters.split"
        )
    if data.snapshot_id is not None:
        found = _snapshot_prompts(db, settings, project_id, data.snapshot_id, params.split)
        where = f"snapshot {data.snapshot_id}'s {params.split} split"
        field = "snapshot_id"
    elif params.prompt_queue_id is not None:
        queue = get_queue(db, params.prompt_queue_id)
        if queue.project_id != project_id:
            raise InvalidInput(
                f"queue {queue.id} belongs to another project",
                field="hyperparameters.prompt_queue_id",
            )
        rows = db.scalars(
            select(Task.prompt_id)
            .where(Task.queue_id == queue.id, Task.retired_at.is_(None))
            .order_by(Task.id)
        )
        found = list(dict.fromkeys(rows))
        where, field = f"queue {queue.id}", "hyperparameters.prompt_queue_id"
    else:
        assert params.prompt_ids is not None
        found = list(params.prompt_ids)
        where, field = "the list", "hyperparameters.prompt_ids"
    if not found:
        raise InvalidInput(f"there are no prompts in {where}", field=field)
    _check_in_project(db, project_id, found, field)
    return found


def _snapshot_prompts(
    db: Session, settings: Settings, project_id: int, snapshot_id: int, split: str
) -> list[int]:
    snapshot = db.get(Snapshot, snapshot_id) if storable_id(snapshot_id) else None
    if snapshot is None or snapshot.project_id != project_id:
        raise InvalidInput(
            f"no snapshot with id {snapshot_id} in project {project_id}", field="snapshot_id"
        )
    folder = settings.data_dir / snapshot.path
    prompt_ids: dict[int, None] = {}
    for part in ("train", "test") if split == "all" else (split,):
        path = folder / f"{part}.jsonl"
        if not path.is_file():
            raise InvalidInput(
                f"snapshot {snapshot.id}'s {part} file is missing from the data folder",
                field="snapshot_id",
            )
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                prompt_ids[int(json.loads(line)["prompt_id"])] = None
    return list(prompt_ids)


def _check_in_project(db: Session, project_id: int, prompt_ids: Sequence[int], field: str) -> None:
    known: set[int] = set()
    for chunk in chunks([pid for pid in prompt_ids if storable_id(pid)]):
        known.update(
            db.scalars(
                select(Prompt.id).where(Prompt.id.in_(chunk), Prompt.project_id == project_id)
            )
        )
    missing = [prompt_id for prompt_id in prompt_ids if prompt_id not in known]
    if missing:
        shown = ", ".join(str(prompt_id) for prompt_id in missing[:5])
        raise InvalidInput(
            f"{len(missing)} prompt(s) are not prompts of project {project_id}: {shown}",
            field=field,
        )


def _select(db: Session, params: GenerateHyperparameters, prompt_ids: list[int]) -> list[int]:
    limit = params.prompt_limit
    if limit is None or (limit >= len(prompt_ids) and params.selection != "disagreement"):
        return prompt_ids
    if params.selection == "random":
        return random.Random(params.seed).sample(prompt_ids, limit)
    if params.selection == "disagreement":
        chosen = most_disputed(db, prompt_ids, limit)
        if not chosen:
            raise InvalidInput(
                "no prompt among these was judged by two labelers, so none has a "
                "disagreement figure: choose random selection",
                field="hyperparameters.selection",
            )
        return chosen
    # reward_gap: the worker scores every candidate's samples and keeps the closest calls.
    return prompt_ids


def _prompt_messages(db: Session, prompt_ids: Sequence[int]) -> dict[int, Any]:
    messages: dict[int, Any] = {}
    for chunk in chunks(list(prompt_ids)):
        rows = db.execute(select(Prompt.id, Prompt.messages).where(Prompt.id.in_(chunk)))
        messages.update({prompt_id: value for prompt_id, value in rows})
    return messages


def _plan_scoring(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    params: ScoreHyperparameters,
) -> RunInputs:
    if data.reward_model_id is None or data.base_model_id != data.reward_model_id:
        raise InvalidInput(
            "a score run names its reward model as reward_model_id (and nothing else as its "
            "base model)",
            field="reward_model_id",
        )
    checked_model(db, settings, data.reward_model_id, ModelRole.reward, "reward_model_id")
    query = (
        select(Response.id, Response.prompt_id, Response.content)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project_id)
        .order_by(Response.id.desc())
    )
    if params.responses == "judged":
        judged = (
            select(ComparisonItem.response_id)
            .join(Comparison, Comparison.id == ComparisonItem.comparison_id)
            # People's judgements: an AI judge's label does not make a response "judged".
            .where(Comparison.prompt_id == Response.prompt_id, Comparison.source != LabelSource.ai)
        )
        query = query.where(Response.id.in_(judged))
    if params.limit is not None:
        query = query.limit(params.limit)
    rows = db.execute(query).all()
    if not rows:
        what = "judged responses" if params.responses == "judged" else "responses"
        raise InvalidInput(
            f"project {project_id} has no {what} to score", field="hyperparameters.responses"
        )
    messages = _prompt_messages(db, sorted({prompt_id for _, prompt_id, _ in rows}))
    return RunInputs(
        INPUT_FILE[RunKind.score],
        [
            {"response_id": rid, "prompt": messages[pid], "content": content}
            for rid, pid, content in rows
        ],
    )
