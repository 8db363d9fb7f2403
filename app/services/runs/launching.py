"""Launching a run: every input is checked here, before anything is queued, so a bad config is
refused with a sentence instead of failing minutes later on a GPU worker."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from importlib.util import find_spec

from pydantic import BaseModel, ValidationError
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import ModelRole, Run, RunKind, Snapshot, SnapshotKind, User
from app.schemas.critique import CritiqueHyperparameters
from app.schemas.generation import GenerateHyperparameters, ScoreHyperparameters
from app.schemas.judging import JudgeHyperparameters
from app.schemas.runs import HYPERPARAMETERS
from app.schemas.training import RunCreate
from app.services import critique, generation, registry
from app.services.judging.launching import plan_judging
from app.services.prompts import get_project_checked, storable_id
from app.services.runs.queueing import TRAIN_TASK, BrokerUnreachable, connected_sender
from app.settings import Settings

# The snapshot kind each run kind trains on.
SNAPSHOT_KIND = {
    RunKind.sft: SnapshotKind.sft,
    RunKind.reward: SnapshotKind.preference,
    RunKind.dpo: SnapshotKind.preference,
    RunKind.ppo: SnapshotKind.prompts,
    RunKind.rloo: SnapshotKind.prompts,
    RunKind.grpo: SnapshotKind.prompts,
}
NEEDS_REWARD_MODEL = {RunKind.ppo, RunKind.rloo, RunKind.grpo}
# Every kind's settings schema: the training kinds', and generation's and scoring's.
SETTINGS_SCHEMAS: dict[str, type[BaseModel]] = {
    **HYPERPARAMETERS,
    "generate": GenerateHyperparameters,
    "score": ScoreHyperparameters,
    "critique": CritiqueHyperparameters,
    "judge": JudgeHyperparameters,
}


def create_run(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    *,
    acting: User,
    on_created: Callable[[Run], None] | None = None,
) -> Run:
    """Checks the inputs, stores the run as queued, commits, then enqueues its id; raises
    BrokerUnreachable (503), with nothing recorded, when the job queue cannot be reached.

    `on_created(run)` runs after the row has its id and before the commit, so a caller can
    store rows that point at the run in the same transaction (an evaluation, for one)."""
    get_project_checked(db, project_id)
    hyperparameters = check_hyperparameters(data.kind, data.hyperparameters)
    _check_quantization(hyperparameters)
    if data.kind in generation.SAMPLING_KINDS or data.kind == RunKind.critique:
        plan = critique.plan_inputs if data.kind == RunKind.critique else generation.plan_inputs
        inputs = plan(db, settings, project_id, data, hyperparameters)
        return _store_and_enqueue(
            db, settings, project_id, data, hyperparameters, acting, on_created, inputs
        )
    if data.kind == RunKind.judge:
        # Fills the judge's mode, template and guideline versions into the hyperparameters.
        inputs = plan_judging(db, settings, project_id, data, hyperparameters, acting)
        return _store_and_enqueue(
            db, settings, project_id, data, hyperparameters, acting, on_created, inputs
        )
    if data.base_model_id is not None:
        base = registry.get_model(db, data.base_model_id)
        if base.role != ModelRole.policy:
            raise InvalidInput(
                f"model {base.id} is a {base.role.value} model; runs start from a policy",
                field="base_model_id",
            )
        registry.check_registered_folder(settings, base, field="base_model_id")
    else:
        assert data.base_model_ref is not None
        registry.check_base_ref(settings, data.base_model_ref)
    snapshot = _check_snapshot(db, settings, project_id, data)
    _check_reward_model(db, settings, data)
    _check_batch(hyperparameters, snapshot)
    _check_margin(hyperparameters, snapshot)
    return _store_and_enqueue(
        db, settings, project_id, data, hyperparameters, acting, on_created, None
    )


def _check_quantization(hyperparameters: dict[str, object]) -> None:
    """load_in_4bit needs bitsandbytes (and a CUDA worker, which only the worker can tell: it
    refuses the run before loading anything). Looked up without importing it, so no torch."""
    if hyperparameters.get("load_in_4bit") and find_spec("bitsandbytes") is None:
        raise InvalidInput(
            "hyperparameters.load_in_4bit: 4-bit loading needs the bitsandbytes package and a "
            "CUDA worker, and bitsandbytes is not installed here: install it on a CUDA "
            "installation, or turn load_in_4bit off",
            field="hyperparameters.load_in_4bit",
        )


def _check_margin(hyperparameters: dict[str, object], snapshot: Snapshot) -> None:
    """`use_margin` needs a snapshot with a margin column: one made with margin "score_gap"
    (snapshots older than that option always had one, so a missing key counts as having it)."""
    if hyperparameters.get("use_margin") and snapshot.filters.get("margin") == "none":
        raise InvalidInput(
            f"use_margin needs a margin column, and snapshot {snapshot.id} was made without "
            'one: make a preference snapshot with margin "score_gap"',
            field="hyperparameters.use_margin",
        )


def _store_and_enqueue(
    db: Session,
    settings: Settings,
    project_id: int,
    data: RunCreate,
    hyperparameters: dict[str, object],
    acting: User,
    on_created: Callable[[Run], None] | None,
    inputs: generation.RunInputs | None,
) -> Run:
    # The broker first: when it is down, the launch is refused before anything is written.
    try:
        with connected_sender(settings) as send:
            run = Run(
                project_id=project_id,
                kind=data.kind,
                base_model_id=data.base_model_id,
                base_model_ref=data.base_model_ref,
                reward_model_id=data.reward_model_id,
                snapshot_id=data.snapshot_id,
                hyperparameters=hyperparameters,
                max_attempts=data.max_attempts,
                created_by_id=acting.id,
            )
            db.add(run)
            db.flush()
            run_id = run.id
            try:
                if inputs is not None:
                    generation.write_inputs(settings, run.id, inputs)
                created = _added_by(db, on_created, run)
                db.commit()
            except BaseException:
                db.rollback()
                _remove_run_folder(settings, run_id)
                raise
            try:
                send(TRAIN_TASK, run.id, None)
            except BrokerUnreachable:
                # It died between the connect and the send (a short window): the run was
                # committed but no worker will ever hear of it, so it is taken back out.
                _forget(db, settings, run, created)
                raise
    except BrokerUnreachable:
        # Whatever the caller flushed for this launch goes too: nothing is half-made.
        db.rollback()
        raise
    return run


def _added_by(db: Session, on_created: Callable[[Run], None] | None, run: Run) -> list[object]:
    """Runs `on_created(run)` and returns the rows it inserted, so they can be taken back."""
    if on_created is None:
        return []
    added: list[object] = []

    def collect(session: Session, _: object) -> None:
        # After a flush, session.new still lists the objects that flush inserted.
        added.extend(session.new)

    event.listen(db, "after_flush", collect)
    try:
        on_created(run)
        db.flush()
    finally:
        event.remove(db, "after_flush", collect)
    return added


def _forget(db: Session, settings: Settings, run: Run, created: list[object]) -> None:
    """Deletes a committed run that was never queued, with the rows on_created added for it
    (newest first, so rows pointing at others go before them) and its input files."""
    for row in reversed(created):
        db.delete(row)
    db.flush()
    run_id = run.id
    db.delete(run)
    db.commit()
    _remove_run_folder(settings, run_id)


def _remove_run_folder(settings: Settings, run_id: int) -> None:
    # Only a launch writes here before a worker ran: the generation inputs.
    shutil.rmtree(settings.data_dir / "runs" / str(run_id), ignore_errors=True)


def check_hyperparameters(kind: RunKind, given: dict[str, object]) -> dict[str, object]:
    """The kind's schema applied: unknown keys and bad values refused, defaults filled in."""
    try:
        params = SETTINGS_SCHEMAS[kind.value].model_validate(given)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        raise InvalidInput(
            f"hyperparameters.{where}: {message}" if where else f"hyperparameters: {message}",
            field=f"hyperparameters.{where}" if where else "hyperparameters",
        ) from None
    return params.model_dump(mode="json")


def _check_snapshot(db: Session, settings: Settings, project_id: int, data: RunCreate) -> Snapshot:
    wanted = SNAPSHOT_KIND[data.kind]
    if data.snapshot_id is None:
        raise InvalidInput(
            f"a {data.kind.value} run needs a {wanted.value} snapshot", field="snapshot_id"
        )
    snapshot = db.get(Snapshot, data.snapshot_id) if storable_id(data.snapshot_id) else None
    if snapshot is None or snapshot.project_id != project_id:
        raise InvalidInput(
            f"no snapshot with id {data.snapshot_id} in project {project_id}", field="snapshot_id"
        )
    if snapshot.kind != wanted:
        raise InvalidInput(
            f"snapshot {snapshot.id} is a {snapshot.kind.value} snapshot; a {data.kind.value} "
            f"run needs a {wanted.value} snapshot",
            field="snapshot_id",
        )
    if not (settings.data_dir / snapshot.path).is_dir():
        raise InvalidInput(
            f"snapshot {snapshot.id}'s folder {snapshot.path} is missing from the data folder",
            field="snapshot_id",
        )
    if snapshot.row_counts.get("train", 0) == 0:
        raise InvalidInput(f"snapshot {snapshot.id} has no training rows", field="snapshot_id")
    return snapshot


def _check_reward_model(db: Session, settings: Settings, data: RunCreate) -> None:
    if data.kind not in NEEDS_REWARD_MODEL:
        if data.reward_model_id is not None:
            raise InvalidInput(
                f"a {data.kind.value} run takes no reward model", field="reward_model_id"
            )
        return
    if data.reward_model_id is None:
        raise InvalidInput(f"a {data.kind.value} run needs a reward model", field="reward_model_id")
    model = registry.get_model(db, data.reward_model_id)
    if model.role != ModelRole.reward:
        raise InvalidInput(
            f"model {model.id} is a {model.role.value} model, not a reward model",
            field="reward_model_id",
        )
    if model.path is None:
        raise InvalidInput(f"reward model {model.id} has no local folder", field="reward_model_id")
    registry.check_registered_folder(settings, model, field="reward_model_id")


def _check_batch(hyperparameters: dict[str, object], snapshot: Snapshot) -> None:
    """A batch larger than the training rows would make TRL fail (or silently train on
    nothing) after the worker loaded the model."""
    batch = hyperparameters.get("batch_size")
    rows = snapshot.row_counts.get("train", 0)
    if isinstance(batch, int) and batch > rows:
        raise InvalidInput(
            f"hyperparameters.batch_size: a batch of {batch} is larger than "
            f"snapshot {snapshot.id}'s {rows} training rows",
            field="hyperparameters.batch_size",
        )
