"""Starting an evaluation: both models and the prompts checked, then its queue, its row and its
queued generation run stored in one transaction (create_run's commit), and the run enqueued."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Evaluation,
    Model,
    ModelRole,
    Prompt,
    Queue,
    QueueKind,
    Run,
    RunKind,
    Snapshot,
    User,
)
from app.schemas.evaluations import EvaluationCreate
from app.schemas.training import RunCreate
from app.services import runs
from app.services.prompts import get_project_checked, storable_id
from app.services.queues import chunks
from app.services.runs.queueing import BrokerUnreachable
from app.settings import Settings

# The generation run's fields that are the evaluation's under another name.
RUN_FIELDS = {
    "base_model_id": "model_a_id",
    "hyperparameters.compare_model_id": "model_b_id",
    "hyperparameters.prompt_ids": "prompt_ids",
}


def create_evaluation(
    db: Session, settings: Settings, project_id: int, data: EvaluationCreate, *, acting: User
) -> Evaluation:
    """Checks everything, then stores the queue, the evaluation and its queued generation run
    together (one commit, by create_run), and enqueues the run."""
    get_project_checked(db, project_id)
    model_a = _policy(db, project_id, data.model_a_id, "model_a_id")
    model_b = _policy(db, project_id, data.model_b_id, "model_b_id")
    if model_a.id == model_b.id:
        raise InvalidInput(
            f"an evaluation compares two different models; both are {model_a.name}",
            field="model_b_id",
        )
    _check_prompts(db, project_id, data)
    baseline = model_b.name
    if data.baseline_best_of > 1:
        baseline = f"best of {data.baseline_best_of} of {model_b.name}"
    name = data.name or f"{model_a.name} vs {baseline}"[:150]
    queue = Queue(
        project_id=project_id,
        # Named after the evaluation once it has an id; a unique stand-in until then.
        name=f"Evaluation (starting) {secrets.token_hex(8)}",
        kind=QueueKind.comparison,
        overlap=data.overlap,
        max_overlap=data.overlap,
        open_to_all=True,
        created_by_id=acting.id,
    )
    made: list[Evaluation] = []
    queue_id: int | None = None

    def add_evaluation(run: Run) -> None:
        evaluation = Evaluation(
            project_id=project_id,
            name=name,
            model_a_id=model_a.id,
            model_b_id=model_b.id,
            queue_id=queue.id,
            run_id=run.id,
            created_by_id=acting.id,
        )
        db.add(evaluation)
        db.flush()
        queue.name = _queue_name(db, project_id, evaluation.id, name)
        db.flush()
        made.append(evaluation)

    try:
        db.add(queue)
        db.flush()
        queue_id = queue.id
        generation = _generation_run(data, queue_id)
        runs.create_run(
            db, settings, project_id, generation, acting=acting, on_created=add_evaluation
        )
    except InvalidInput as error:
        # A refusal by create_run leaves the flushed queue behind: nothing may stay. It names
        # the run's fields; say which of the evaluation's it is about.
        db.rollback()
        error.field = RUN_FIELDS.get(error.field or "", error.field)
        raise
    except BrokerUnreachable:
        db.rollback()
        if made and queue_id is not None:
            # The broker died between the connect and the send, after the commit: create_run
            # took the run and the evaluation back out, and the queue made for them goes too.
            # (Refused at the connect, nothing was committed and `made` is empty.)
            stale = db.get(Queue, queue_id)
            if stale is not None:
                db.delete(stale)
                db.commit()
        raise
    except Exception:
        db.rollback()
        raise
    return made[0]


def _queue_name(db: Session, project_id: int, evaluation_id: int, name: str) -> str:
    """The queue's name, like "Evaluation 3: sft-2 vs base" (another if a queue has it)."""
    wanted = f"Evaluation {evaluation_id}: {name}"[:200]
    taken = select(Queue.id).where(Queue.project_id == project_id, Queue.name == wanted)
    if db.scalar(taken) is None:
        return wanted
    return f"Evaluation {evaluation_id} (held-out prompts): {name}"[:200]


def _generation_run(data: EvaluationCreate, queue_id: int) -> RunCreate:
    hyperparameters: dict[str, object] = {
        "samples_per_prompt": 1,
        "compare_model_id": data.model_b_id,
        "target_queue_id": queue_id,
        "repeats": data.repeats,
        "max_new_tokens": data.max_new_tokens,
        "temperature": data.temperature,
        "seed": data.seed,
        "compare_best_of": data.baseline_best_of,
    }
    if data.prompt_ids is not None:
        hyperparameters["prompt_ids"] = data.prompt_ids
    else:
        hyperparameters["split"] = "test"
    return RunCreate(
        kind=RunKind.generate,
        base_model_id=data.model_a_id,
        reward_model_id=data.reward_model_id,
        snapshot_id=data.snapshot_id,
        hyperparameters=hyperparameters,
    )


def _policy(db: Session, project_id: int, model_id: int, field: str) -> Model:
    model = db.get(Model, model_id) if storable_id(model_id) else None
    if model is None:
        raise InvalidInput(f"no model with id {model_id}", field=field)
    if model.role != ModelRole.policy:
        raise InvalidInput(
            f"model {model.name} is a {model.role.value} model; an evaluation compares policies",
            field=field,
        )
    if model.project_id is not None and model.project_id != project_id:
        raise InvalidInput(f"model {model.name} belongs to another project", field=field)
    return model


def _check_prompts(db: Session, project_id: int, data: EvaluationCreate) -> None:
    if data.snapshot_id is not None:
        found = db.get(Snapshot, data.snapshot_id) if storable_id(data.snapshot_id) else None
        if found is None or found.project_id != project_id:
            raise InvalidInput(
                f"no snapshot with id {data.snapshot_id} in project {project_id}",
                field="snapshot_id",
            )
        if found.row_counts.get("test", 0) == 0:
            raise InvalidInput(
                f"snapshot {found.id} has no held-out (test) prompts to evaluate on",
                field="snapshot_id",
            )
        return
    assert data.prompt_ids is not None
    known: set[int] = set()
    wanted = [prompt_id for prompt_id in data.prompt_ids if storable_id(prompt_id)]
    for chunk in chunks(wanted):
        known.update(
            db.scalars(
                select(Prompt.id).where(Prompt.id.in_(chunk), Prompt.project_id == project_id)
            )
        )
    missing = [prompt_id for prompt_id in data.prompt_ids if prompt_id not in known]
    if missing:
        shown = ", ".join(str(prompt_id) for prompt_id in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InvalidInput(
            f"no prompt with id {shown}{more} in project {project_id}", field="prompt_ids"
        )
