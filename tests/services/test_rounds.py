"""A project's rounds of the loop from a hand-made registry, every figure written out.

  base (registered) --sft run (h10)--> sft-1 (h11)
  sft-1 --reward run (h20)--> rm-1;  sft-1 --rloo run (h21, reward win rate 0.71)--> rloo-1 (h30)
  sft-1 --dpo run (h22), failed, made nothing
  rloo-1 --rloo run (h40, reward win rate 0.6)--> rloo-2 (h50)
  rloo-1 --generate run (h45): in no round; another project's SFT run: not this project's

Labels (hour: what): h1, h2, h5 a demonstration each; h3 a comparison with one pair;
h12 a comparison of three responses (three pairs), a rewrite made in it (its own comparison
with one pair), and a comparison with a tie (no pair); h13 a judgement in the evaluation queue
(held out); h14 a judge's comparison (rm-1, source "ai", one pair); h15 a demonstration; h16
a demonstration sft-1 wrote (source "ai"); h35 a comparison with one pair.

Evaluations of rloo-1 (A) against sft-1 (B): an older one nobody judged, and the latest,
judged win, win, loss on three tasks by one labeler each: 2/3, Wilson [0.20766, 0.93851].
One of sft-1 (A) against rloo-1 (B), the wrong way round, is never used for rloo-1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    Evaluation,
    LabelSource,
    Model,
    ModelRole,
    Pair,
    Project,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Run,
    RunKind,
    RunStatus,
    Task,
    TaskResponse,
    User,
)
from app.services.rounds import project_rounds
from app.settings import Settings
from tests.factories import make_project, make_prompt
from tests.training_factories import make_model

T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


def hour(number: int) -> datetime:
    return T0 + timedelta(hours=number)


def run(
    db: Session,
    project: Project,
    kind: RunKind,
    base: Model,
    at: int,
    *,
    made: Model | None = None,
    status: RunStatus = RunStatus.succeeded,
    win_rate: float | None = None,
) -> Run:
    row = Run(
        project_id=project.id,
        kind=kind,
        status=status,
        base_model_id=base.id,
        output_model_id=made.id if made else None,
        hyperparameters={},
        metrics={"eval": {"win_rate": win_rate, "mean_reward": 1.5}} if win_rate else {},
        created_at=hour(at),
    )
    db.add(row)
    db.flush()
    return row


def output(
    db: Session,
    settings: Settings,
    name: str,
    base: Model,
    project: Project,
    at: int,
    role: ModelRole = ModelRole.policy,
) -> Model:
    model = make_model(db, settings, name, role, base=base, project=project)
    model.created_at = hour(at)
    db.flush()
    return model


def compare(
    db: Session,
    project: Project,
    who: User,
    ranks: list[int],
    at: int,
    *,
    task: Task | None = None,
    rewrite_of: Comparison | None = None,
    model: Model | None = None,
) -> tuple[Comparison, list[int]]:
    """A comparison of fresh responses (or the task's) with the pairs its ranks give; with
    `model`, a judge's (source "ai") rather than `who`'s."""
    if task is None:
        prompt = make_prompt(db, project, f"Question at {at}?")
        answers = [
            Response(prompt_id=prompt.id, content=f"{i}", source=ResponseSource.imported)
            for i in range(len(ranks))
        ]
        db.add_all(answers)
        db.flush()
        ids, prompt_id = [answer.id for answer in answers], prompt.id
    else:
        ids = [row.response_id for row in task_responses(db, task)]
        prompt_id = task.prompt_id
    comparison = Comparison(
        task_id=task.id if task else None,
        prompt_id=prompt_id,
        labeler_id=None if model else who.id,
        source=LabelSource.ai if model else LabelSource.labeler,
        model_id=model.id if model else None,
        created_at=hour(at),
        rewrite_in_comparison_id=rewrite_of.id if rewrite_of else None,
    )
    db.add(comparison)
    db.flush()
    for response_id, rank in zip(ids, ranks, strict=True):
        db.add(ComparisonItem(comparison_id=comparison.id, response_id=response_id, rank=rank))
    for winner, winner_rank in zip(ids, ranks, strict=True):
        for loser, loser_rank in zip(ids, ranks, strict=True):
            if winner_rank < loser_rank:
                db.add(
                    Pair(
                        comparison_id=comparison.id,
                        prompt_id=prompt_id,
                        winner_response_id=winner,
                        loser_response_id=loser,
                    )
                )
    db.flush()
    return comparison, ids


def task_responses(db: Session, task: Task) -> list[TaskResponse]:
    return sorted(
        db.query(TaskResponse).filter(TaskResponse.task_id == task.id),
        key=lambda row: row.position,
    )


def demonstrate(
    db: Session, project: Project, who: User | None, at: int, *, model: Model | None = None
) -> None:
    """A demonstration by `who`, or with `model` one a model wrote (source "ai")."""
    prompt = make_prompt(db, project, f"Write at {at}.")
    db.add(
        Demonstration(
            prompt_id=prompt.id,
            labeler_id=who.id if who else None,
            source=LabelSource.ai if model else LabelSource.labeler,
            model_id=model.id if model else None,
            messages=[{"role": "assistant", "content": "Done."}],
            created_at=hour(at),
        )
    )
    db.flush()


def evaluation(
    db: Session, project: Project, a: Model, b: Model, name: str, *, overlap: int = 1
) -> tuple[Evaluation, Queue]:
    queue = Queue(
        project_id=project.id,
        name=name,
        kind=QueueKind.comparison,
        overlap=overlap,
        max_overlap=overlap,
    )
    db.add(queue)
    db.flush()
    row = Evaluation(
        project_id=project.id, name=name, model_a_id=a.id, model_b_id=b.id, queue_id=queue.id
    )
    db.add(row)
    db.flush()
    return row, queue


def side_by_side(db: Session, project: Project, queue: Queue, a: Model, b: Model) -> Task:
    prompt = make_prompt(db, project, "Held out?")
    answers = [
        Response(prompt_id=prompt.id, content=m.name, source=ResponseSource.model, model_id=m.id)
        for m in (a, b)
    ]
    db.add_all(answers)
    task = Task(queue_id=queue.id, prompt_id=prompt.id)
    db.add(task)
    db.flush()
    for position, answer in enumerate(answers):
        db.add(TaskResponse(task_id=task.id, response_id=answer.id, position=position))
    db.flush()
    return task


@pytest.fixture
def loop(db: Session, settings: Settings) -> dict[str, object]:
    return build_loop(db, settings)


def build_loop(db: Session, settings: Settings) -> dict[str, object]:
    """The registry and labels of the module's docstring."""
    project = make_project(db)
    other = make_project(db, "Elsewhere")
    ann = User(username="ann", role=Role.labeler, password_hash="not-a-hash")
    db.add(ann)
    base = make_model(db, settings, "base")
    sft = output(db, settings, "sft-1", base, project, 11)
    rm = output(db, settings, "rm-1", sft, project, 25, ModelRole.reward)
    rloo = output(db, settings, "rloo-1", sft, project, 30)
    rloo2 = output(db, settings, "rloo-2", rloo, project, 50)
    theirs = output(db, settings, "their-sft", base, other, 11)
    runs = {
        "sft": run(db, project, RunKind.sft, base, 10, made=sft),
        "reward": run(db, project, RunKind.reward, sft, 20, made=rm),
        "rloo": run(db, project, RunKind.rloo, sft, 21, made=rloo, win_rate=0.71),
        "dpo": run(db, project, RunKind.dpo, sft, 22, status=RunStatus.failed),
        "rloo2": run(db, project, RunKind.rloo, rloo, 40, made=rloo2, win_rate=0.6),
    }
    run(db, project, RunKind.generate, rloo, 45)
    run(db, other, RunKind.sft, base, 5, made=theirs)

    for at in (1, 2, 5, 15):
        demonstrate(db, project, ann, at)
    compare(db, project, ann, [1, 2], 3)
    judged, _ = compare(db, project, ann, [1, 2, 3], 12)
    compare(db, project, ann, [1, 2], 12, rewrite_of=judged)
    compare(db, project, ann, [1, 1], 12)
    compare(db, project, ann, [1, 2], 35)
    # A judge's comparison (one pair) and a model's demonstration in round 1's window.
    compare(db, project, ann, [1, 2], 14, model=rm)
    demonstrate(db, project, None, 16, model=sft)

    evaluation(db, project, rloo, sft, "never judged")
    latest, queue = evaluation(db, project, rloo, sft, "rloo-1 vs sft-1")
    for ranks in ([1, 2], [1, 2], [2, 1]):
        compare(db, project, ann, ranks, 13, task=side_by_side(db, project, queue, rloo, sft))
    _, queue = evaluation(db, project, sft, rloo, "sft-1 vs rloo-1")
    compare(db, project, ann, [1, 2], 13, task=side_by_side(db, project, queue, sft, rloo))
    db.commit()
    return {
        "project": project,
        "models": (base, sft, rm, rloo, rloo2),
        "runs": runs,
        "latest": latest,
    }


def test_rounds_of_the_loop(db: Session, loop: dict) -> None:
    project = loop["project"]
    base, sft, rm, rloo, rloo2 = loop["models"]
    runs = loop["runs"]
    rounds = project_rounds(db, project.id)

    assert [found.number for found in rounds] == [0, 1, 2]
    zero, one, two = rounds
    assert [(r.id, r.kind, r.status, r.output_model_id) for r in zero.runs] == [
        (runs["sft"].id, RunKind.sft, RunStatus.succeeded, sft.id)
    ]
    assert [(r.id, r.kind, r.status, r.output_model_id) for r in one.runs] == [
        (runs["reward"].id, RunKind.reward, RunStatus.succeeded, rm.id),
        (runs["rloo"].id, RunKind.rloo, RunStatus.succeeded, rloo.id),
        (runs["dpo"].id, RunKind.dpo, RunStatus.failed, None),
    ]
    assert [(r.id, r.base_model_id) for r in two.runs] == [(runs["rloo2"].id, rloo.id)]

    assert [(m.id, m.name, m.role, m.run_id) for m in zero.models] == [
        (sft.id, "sft-1", "policy", runs["sft"].id)
    ]
    assert [(m.name, m.role) for m in one.models] == [("rm-1", "reward"), ("rloo-1", "policy")]
    assert [(m.name, m.role) for m in two.models] == [("rloo-2", "policy")]

    # Before the SFT run: three demonstrations and one comparison (one pair).
    assert zero.data.model_dump() == {
        "since": None,
        "until": hour(10),
        "demonstrations": 3,
        "comparisons": 1,
        "pairs": 1,
        "ai_demonstrations": 0,
        "ai_comparisons": 0,
    }
    # From sft-1 (h11) to the reward run (h20): the rewrite is no comparison of its own but its
    # pair counts; the evaluation queue's judgements are held out; the judge's comparison
    # and the model's demonstration are counted apart, the judge's pair not at all.
    assert one.data.model_dump() == {
        "since": hour(11),
        "until": hour(20),
        "demonstrations": 1,
        "comparisons": 2,
        "pairs": 4,
        "ai_demonstrations": 1,
        "ai_comparisons": 1,
    }
    assert two.data.model_dump() == {
        "since": hour(30),
        "until": hour(40),
        "demonstrations": 0,
        "comparisons": 1,
        "pairs": 1,
        "ai_demonstrations": 0,
        "ai_comparisons": 0,
    }

    (sft_rate,) = zero.policies
    assert (sft_rate.model_name, sft_rate.start_model_id, sft_rate.start_model_name) == (
        "sft-1",
        base.id,
        "base",
    )
    assert (sft_rate.human, sft_rate.reward_model_win_rate) == (None, None)

    (rloo_rate,) = one.policies
    assert (rloo_rate.model_id, rloo_rate.run_id, rloo_rate.start_model_id) == (
        rloo.id,
        runs["rloo"].id,
        sft.id,
    )
    assert rloo_rate.reward_model_win_rate == 0.71
    assert rloo_rate.human is not None
    assert rloo_rate.human.evaluation_id == loop["latest"].id
    assert rloo_rate.human.judgements == 3
    assert rloo_rate.human.win_rate == pytest.approx(2 / 3)
    assert rloo_rate.human.ci_low == pytest.approx(0.20766, abs=1e-5)
    assert rloo_rate.human.ci_high == pytest.approx(0.93851, abs=1e-5)

    (rloo2_rate,) = two.policies
    assert (rloo2_rate.model_id, rloo2_rate.model_name) == (rloo2.id, "rloo-2")
    assert (rloo2_rate.start_model_id, rloo2_rate.start_model_name) == (rloo.id, "rloo-1")
    assert (rloo2_rate.human, rloo2_rate.reward_model_win_rate) == (None, 0.6)


def test_a_project_without_runs_has_no_rounds_and_an_unknown_one_is_not_found(
    db: Session,
) -> None:
    project = make_project(db)
    db.commit()
    assert project_rounds(db, project.id) == []
    with pytest.raises(NotFound):
        project_rounds(db, 987654)
