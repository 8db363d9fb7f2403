"""Side-by-side evaluations: bad inputs refused with nothing stored or queued; a good one makes
its queue, its row and its queued generation run together; the result of a hand-worked set of
judgements, with its confidence interval, to the fourth decimal."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound, ServiceUnavailable
from app.models import (
    Comparison,
    ComparisonItem,
    Evaluation,
    LabelSource,
    Model,
    ModelRole,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Run,
    RunKind,
    RunStatus,
    Snapshot,
    SnapshotKind,
    Task,
    TaskResponse,
    User,
)
from app.schemas.evaluations import EvaluationCreate
from app.services import evaluations
from app.services.evaluations import win_rate_interval
from app.services.runs import launching
from app.services.runs.queueing import BROKER_DOWN, Send
from app.settings import Settings
from tests.broker_faults import dies_before_the_send, refuses_the_connection
from tests.factories import make_project, make_prompt
from tests.training_factories import make_model, make_snapshot, queued_messages

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@dataclass
class Registry:
    project: Project
    base: Model
    sft: Model
    reward: Model
    elsewhere: Model
    held_out: Snapshot
    test_prompts: list[Prompt]


def held_out_snapshot(
    db: Session, settings: Settings, project: Project, prompts: list[Prompt], *, test: int
) -> Snapshot:
    """A prompts snapshot whose test file holds the first `test` prompts (the rest: train)."""
    snapshot = make_snapshot(
        db, settings, project, SnapshotKind.prompts, train=len(prompts) - test, test=test
    )
    folder = settings.data_dir / snapshot.path
    for split, part in (("train", prompts[test:]), ("test", prompts[:test])):
        lines = [json.dumps({"prompt_id": prompt.id}) + "\n" for prompt in part]
        (folder / f"{split}.jsonl").write_text("".join(lines))
    return snapshot


def build_registry(db: Session, settings: Settings) -> Registry:
    """Shared with the API and page tests."""
    project = make_project(db)
    other = make_project(db, "Elsewhere")
    base = make_model(db, settings, "base")
    sft = make_model(db, settings, "sft-1", base=base, project=project)
    reward = make_model(db, settings, "rm-1", ModelRole.reward, base=sft, project=project)
    elsewhere = make_model(db, settings, "theirs", project=other)
    prompts = [make_prompt(db, project, f"Question {number}?") for number in range(4)]
    snapshot = held_out_snapshot(db, settings, project, prompts, test=2)
    # The service rolls back what it flushed when a check refuses: keep the world committed.
    db.commit()
    return Registry(project, base, sft, reward, elsewhere, snapshot, prompts[:2])


@pytest.fixture
def world(db: Session, settings: Settings) -> Registry:
    return build_registry(db, settings)


def counts(db: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        db.scalar(select(func.count()).select_from(table)) for table in (Queue, Evaluation, Run)
    )


def start(db: Session, settings: Settings, world: Registry, user: User, **fields: Any):
    values: dict[str, Any] = {
        "model_a_id": world.sft.id,
        "model_b_id": world.base.id,
        "snapshot_id": world.held_out.id,
    }
    values.update(fields)
    data = EvaluationCreate(**values)
    return evaluations.create_evaluation(db, settings, world.project.id, data, acting=user)


# --- starting one -----------------------------------------------------------------------------


def test_an_evaluation_stores_its_queue_row_and_queued_generation_run_together(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    evaluation = start(db, settings, world, researcher, overlap=3, repeats=2, seed=7)

    assert evaluation.name == "sft-1 vs base"
    assert (evaluation.model_a_id, evaluation.model_b_id) == (world.sft.id, world.base.id)
    assert evaluation.created_by_id == researcher.id
    queue = db.get(Queue, evaluation.queue_id)
    assert queue is not None
    assert queue.name == f"Evaluation {evaluation.id}: sft-1 vs base"
    assert queue.kind == QueueKind.comparison
    assert (queue.overlap, queue.max_overlap, queue.open_to_all) == (3, 3, True)
    assert queue.project_id == world.project.id
    run = db.get(Run, evaluation.run_id)
    assert run is not None
    assert (run.kind, run.status) == (RunKind.generate, RunStatus.queued)
    assert (run.base_model_id, run.snapshot_id) == (world.sft.id, world.held_out.id)
    params = run.hyperparameters
    assert params["samples_per_prompt"] == 1
    assert params["compare_model_id"] == world.base.id
    assert params["target_queue_id"] == queue.id
    assert (params["repeats"], params["split"], params["seed"]) == (2, "test", 7)
    assert (params["max_new_tokens"], params["temperature"]) == (32, 1.0)
    # The run answers the held-out prompts only, and is enqueued once, after the commit.
    written = settings.data_dir / "runs" / str(run.id) / "input" / "prompts.jsonl"
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [row["prompt_id"] for row in rows] == [prompt.id for prompt in world.test_prompts]
    assert queued_messages(settings) == 1
    assert counts(db) == (1, 1, 1)


def test_an_evaluation_on_listed_prompts_takes_its_name(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    prompt_ids = [world.test_prompts[1].id]
    evaluation = start(
        db, settings, world, researcher, snapshot_id=None, prompt_ids=prompt_ids, name=" Round 2 "
    )
    run = db.get(Run, evaluation.run_id)
    assert run is not None and run.snapshot_id is None
    assert run.hyperparameters["prompt_ids"] == prompt_ids
    assert run.hyperparameters["split"] == "all"
    assert evaluation.name == "Round 2"
    queue = db.get(Queue, evaluation.queue_id)
    assert queue is not None and queue.name == f"Evaluation {evaluation.id}: Round 2"


BAD = [
    (lambda w: {"model_b_id": w.sft.id}, "model_b_id", "an evaluation compares two different "
     "models; both are sft-1"),
    (lambda w: {"model_a_id": 987654}, "model_a_id", "no model with id 987654"),
    (lambda w: {"model_b_id": 2**40}, "model_b_id", f"no model with id {2**40}"),
    (lambda w: {"model_b_id": w.reward.id}, "model_b_id",
     "model rm-1 is a reward model; an evaluation compares policies"),
    (lambda w: {"model_a_id": w.elsewhere.id}, "model_a_id",
     "model theirs belongs to another project"),
    (lambda w: {"snapshot_id": 987654}, "snapshot_id", "no snapshot with id 987654 in project {p}"),
    (lambda w: {"snapshot_id": None, "prompt_ids": [w.test_prompts[0].id, 987654]}, "prompt_ids",
     "no prompt with id 987654 in project {p}"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "field", "message"), BAD)
def test_bad_input_is_refused_and_nothing_is_stored_or_queued(
    db: Session, settings: Settings, world: Registry, researcher: User, fields, field, message
) -> None:
    before = counts(db)
    with pytest.raises(InvalidInput) as refused:
        start(db, settings, world, researcher, **fields(world))
    assert refused.value.field == field
    assert refused.value.message == message.format(p=world.project.id)
    assert counts(db) == before
    assert queued_messages(settings) == 0


def test_a_snapshot_without_held_out_prompts_is_refused(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    all_train = held_out_snapshot(db, settings, world.project, world.test_prompts, test=0)
    db.commit()
    before = counts(db)
    with pytest.raises(InvalidInput) as refused:
        start(db, settings, world, researcher, snapshot_id=all_train.id)
    assert refused.value.field == "snapshot_id"
    assert refused.value.message == (
        f"snapshot {all_train.id} has no held-out (test) prompts to evaluate on"
    )
    assert counts(db) == before


def test_a_refusal_by_the_generation_run_leaves_no_queue_behind(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    """The queue is flushed before the run's own checks (the run names it): a model whose
    folder is gone is refused there, and the queue must go with it."""
    gone = Model(name="gone", role=ModelRole.policy, path="models/gone")
    db.add(gone)
    db.commit()
    before = counts(db)
    with pytest.raises(InvalidInput) as refused:
        start(db, settings, world, researcher, model_a_id=gone.id)
    # The run's base model is the evaluation's model A.
    assert refused.value.field == "model_a_id"
    assert refused.value.message == f"no model folder at {settings.data_dir / 'models/gone'}"
    with pytest.raises(InvalidInput) as refused:
        start(db, settings, world, researcher, model_b_id=gone.id)
    assert refused.value.field == "model_b_id"
    assert counts(db) == before
    assert queued_messages(settings) == 0


@pytest.mark.parametrize("broker", [dies_before_the_send, refuses_the_connection])
def test_a_broker_lost_at_the_launch_leaves_no_queue_evaluation_or_run(
    db: Session,
    settings: Settings,
    world: Registry,
    researcher: User,
    monkeypatch: pytest.MonkeyPatch,
    broker: Callable[[Settings], AbstractContextManager[Send]],
) -> None:
    """Refused at the connect, nothing is written; lost after the commit (before the send),
    the run and the evaluation are taken back out by create_run, and the queue here."""
    before = counts(db)
    monkeypatch.setattr(launching, "connected_sender", broker)
    with pytest.raises(ServiceUnavailable) as refused:
        start(db, settings, world, researcher)
    assert (refused.value.status_code, refused.value.message) == (503, BROKER_DOWN)
    assert counts(db) == before
    assert queued_messages(settings) == 0


def test_best_of_n_of_the_baseline_is_picked_by_the_reward_model(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    evaluation = start(
        db, settings, world, researcher, baseline_best_of=4, reward_model_id=world.reward.id
    )
    assert evaluation.name == "sft-1 vs best of 4 of base"
    run = db.get(Run, evaluation.run_id)
    assert run is not None and run.reward_model_id == world.reward.id
    assert run.hyperparameters["compare_best_of"] == 4
    assert run.hyperparameters["samples_per_prompt"] == 1


def test_a_best_of_n_baseline_needs_a_reward_model_that_is_one(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    before = counts(db)
    with pytest.raises(InvalidInput) as refused:
        start(db, settings, world, researcher, baseline_best_of=4, reward_model_id=world.base.id)
    assert refused.value.field == "reward_model_id"
    assert refused.value.message == f"model {world.base.id} is a policy model, not a reward model"
    assert counts(db) == before
    assert queued_messages(settings) == 0


def test_bad_settings_are_refused_by_the_schema() -> None:
    with pytest.raises(ValueError, match="a best-of-N baseline needs a reward model"):
        EvaluationCreate(model_a_id=1, model_b_id=2, snapshot_id=3, baseline_best_of=4)
    with pytest.raises(ValueError, match="a reward model only picks a best-of-N baseline"):
        EvaluationCreate(model_a_id=1, model_b_id=2, snapshot_id=3, reward_model_id=5)
    with pytest.raises(ValueError, match="a snapshot's test split or a list of ids"):
        EvaluationCreate(model_a_id=1, model_b_id=2)
    with pytest.raises(ValueError, match="a snapshot's test split or a list of ids"):
        EvaluationCreate(model_a_id=1, model_b_id=2, snapshot_id=3, prompt_ids=[4])
    with pytest.raises(ValueError, match="lists a prompt twice"):
        EvaluationCreate(model_a_id=1, model_b_id=2, prompt_ids=[4, 4])
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        EvaluationCreate(model_a_id=1, model_b_id=2, snapshot_id=3, overlap=0)


# --- the result -------------------------------------------------------------------------------


def labeler(db: Session, name: str) -> User:
    user = User(username=name, role=Role.labeler, password_hash="not-a-hash")
    db.add(user)
    db.flush()
    return user


def side_by_side(db: Session, queue: Queue, world: Registry) -> tuple[Task, int, int]:
    """A task showing one answer by model A (sft-1) and one by model B (base), B first."""
    prompt = make_prompt(db, world.project, "Held out?")
    answers = [
        Response(prompt_id=prompt.id, content=text, source=ResponseSource.model, model_id=model)
        for text, model in (("B's", world.base.id), ("A's", world.sft.id))
    ]
    db.add_all(answers)
    task = Task(queue_id=queue.id, prompt_id=prompt.id, overlap=queue.overlap)
    db.add(task)
    db.flush()
    for position, answer in enumerate(answers):
        db.add(TaskResponse(task_id=task.id, response_id=answer.id, position=position))
    db.flush()
    return task, answers[1].id, answers[0].id


def judge(
    db: Session,
    task: Task,
    who: User | None,
    ranks: dict[int, int | None],
    *,
    hours: int,
    all_unacceptable: bool = False,
) -> None:
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=who.id if who else None,
        source=LabelSource.labeler if who else LabelSource.imported,
        all_unacceptable=all_unacceptable,
        created_at=T0 + timedelta(hours=hours),
    )
    db.add(comparison)
    db.flush()
    db.add_all(
        ComparisonItem(comparison_id=comparison.id, response_id=response_id, rank=rank)
        for response_id, rank in ranks.items()
    )
    db.flush()


def hand_worked(db: Session, world: Registry) -> Evaluation:
    """Ranks written (A, B); 1 is best.

      T1  ann (1, 2) win     bob (1, 2) win
      T2  ann (1, 1) tie     bob (2, 1) loss
      T3  cat (1, 2) win     (cat's earlier (2, 1) is replaced by it)
      T4  not judged
    Not counted: an import of T1 (2, 1), bob's "all unacceptable" on T3, and ann's (2, 1) on a
    task of another queue showing the same two models.

    3 wins, 1 tie, 1 loss: win rate (3 + 1/2) / 5 = 0.7. Outcomes y = 1, 1 | 0.5, 0 | 1.
    Independent variance: sum (y - 0.7)^2 = 0.8, s^2 = 0.8 / 4 = 0.2, / n = 0.04.
    Clustered by task: (2 - 1.4)^2 + (0.5 - 1.4)^2 + (1 - 0.7)^2 = 1.26, x 3/2 / 25 = 0.0756.
    Design effect 0.0756 / 0.04 = 1.89; effective judgements 5 / 1.89 = 2.6455.
    Wilson at z = 1.95996 on p = 0.7, n = 2.6455: [0.20956, 0.95357].
    """
    queue = Queue(
        project_id=world.project.id, name="Evaluation 1", kind=QueueKind.comparison, overlap=2,
        max_overlap=2,
    )  # fmt: skip
    other_queue = Queue(project_id=world.project.id, name="chat", kind=QueueKind.comparison)
    db.add_all([queue, other_queue])
    db.flush()
    evaluation = Evaluation(
        project_id=world.project.id,
        name="sft-1 vs base",
        model_a_id=world.sft.id,
        model_b_id=world.base.id,
        queue_id=queue.id,
    )
    db.add(evaluation)
    ann, bob, cat = (labeler(db, name) for name in ("ann", "bob", "cat"))
    (t1, a1, b1), (t2, a2, b2), (t3, a3, b3) = (side_by_side(db, queue, world) for _ in range(3))
    side_by_side(db, queue, world)
    elsewhere, a9, b9 = side_by_side(db, other_queue, world)
    judge(db, t1, ann, {a1: 1, b1: 2}, hours=1)
    judge(db, t1, bob, {a1: 1, b1: 2}, hours=2)
    judge(db, t2, ann, {a2: 1, b2: 1}, hours=3)
    judge(db, t2, bob, {a2: 2, b2: 1}, hours=4)
    judge(db, t3, cat, {a3: 2, b3: 1}, hours=5)
    judge(db, t3, cat, {a3: 1, b3: 2}, hours=6)
    judge(db, t1, None, {a1: 2, b1: 1}, hours=7)
    judge(db, t3, bob, {a3: None, b3: None}, hours=8, all_unacceptable=True)
    judge(db, elsewhere, ann, {a9: 2, b9: 1}, hours=9)
    db.commit()
    return evaluation


def test_the_result_of_hand_worked_judgements(db: Session, world: Registry) -> None:
    evaluation = hand_worked(db, world)
    result = evaluations.evaluation_result(db, evaluation.id)
    assert (result.wins, result.ties, result.losses) == (3, 1, 1)
    assert (result.judgements, result.tasks_judged, result.tasks_total) == (5, 3, 4)
    assert result.win_rate == pytest.approx(0.7)
    assert result.effective_judgements == pytest.approx(5 / 1.89)
    assert result.ci_low == pytest.approx(0.20956, abs=1e-5)
    assert result.ci_high == pytest.approx(0.95357, abs=1e-5)
    assert result.confidence == 0.95


def test_an_evaluation_nobody_judged_has_no_rate(db: Session, world: Registry) -> None:
    queue = Queue(project_id=world.project.id, name="Evaluation 9", kind=QueueKind.comparison)
    db.add(queue)
    db.flush()
    evaluation = Evaluation(
        project_id=world.project.id, name="x", model_a_id=world.sft.id,
        model_b_id=world.base.id, queue_id=queue.id,
    )  # fmt: skip
    db.add(evaluation)
    side_by_side(db, queue, world)
    db.commit()
    result = evaluations.evaluation_result(db, evaluation.id)
    assert (result.judgements, result.tasks_judged, result.tasks_total) == (0, 0, 1)
    assert (result.win_rate, result.ci_low, result.ci_high) == (None, None, None)


def test_with_one_labeler_per_task_the_interval_is_wilsons() -> None:
    # 8 wins in 10 independent judgements: the textbook Wilson 95% interval.
    found = win_rate_interval([[1.0]] * 8 + [[0.0]] * 2)
    assert found is not None
    assert found.win_rate == pytest.approx(0.8)
    assert found.effective_judgements == pytest.approx(10.0)
    assert (found.low, found.high) == (
        pytest.approx(0.49016, abs=1e-5),
        pytest.approx(0.94332, abs=1e-5),
    )


def test_when_the_design_effect_cannot_be_estimated_each_task_counts_once() -> None:
    # Six wins on three tasks: no spread to estimate from, so three effective judgements.
    found = win_rate_interval([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    assert found is not None
    assert found.effective_judgements == 3.0
    assert (found.low, found.high) == (pytest.approx(0.43850, abs=1e-5), 1.0)
    one_task = win_rate_interval([[1.0, 0.0, 0.5]])
    assert one_task is not None and one_task.effective_judgements == 1.0
    assert win_rate_interval([]) is None
    assert win_rate_interval([[], []]) is None


# --- reading ----------------------------------------------------------------------------------


def test_evaluations_are_listed_newest_first_and_unknown_ones_are_not_found(
    db: Session, settings: Settings, world: Registry, researcher: User
) -> None:
    first = start(db, settings, world, researcher)
    second = start(
        db, settings, world, researcher, model_a_id=world.base.id, model_b_id=world.sft.id
    )
    found = evaluations.list_evaluations(db, world.project.id)
    assert [evaluation.id for evaluation in found] == [second.id, first.id]
    out = evaluations.evaluation_out(db, second)
    assert (out.model_a_name, out.model_b_name, out.run_status) == (
        "base",
        "sft-1",
        RunStatus.queued,
    )
    assert out.queue_name == f"Evaluation {second.id}: base vs sft-1"
    assert out.result.tasks_total == 0
    with pytest.raises(NotFound, match="no evaluation with id 987654"):
        evaluations.get_evaluation(db, 987654)
    with pytest.raises(NotFound, match=f"no evaluation with id {2**40}"):
        evaluations.get_evaluation(db, 2**40)
    with pytest.raises(NotFound):
        evaluations.list_evaluations(db, 987654)
