"""The loop's AI-feedback arm (issue 20): the same round, trained on a judge's labels instead of
people's, with what each cost.

A round's human arm pays people for every label of its comparison queue. The AI arm pays them
for a seed only: the round's start policy samples answers to the first `ai_seed_prompts`
training prompts into a seed queue that people label once each (overlap 1); a reward model
trained on the seeds so far is the round's judge, and a judge run labels every task of the
round's comparison queue with it (labels of source "ai", naming the judge and the run; they
fill none of the overlap people fill). A second reward model is trained on the judges' labels
alone (a snapshot of label source "ai" over the rounds' queues, as the human arm's reward model
takes people's labels over the same queues), and RLOO against it, with the human arm's RLOO
settings from the same start, is the arm's policy.

It is measured like every arm (people choose on the selection split, the hidden preference
scores the final split) but never kept: it answers how far labels bought from a judge stand in
for the labels people were paid for, not which policy the loop goes on with. Beside it: the
judge's agreement with people's consensus on the round's queue (what a real project can see,
on the agreement page), and the hidden preference's accuracy on the judges' labels and on
people's (what only the simulation can see).
"""

from __future__ import annotations

from app.models import QueueKind, SnapshotKind
from app.schemas.training import RunCreate
from app.services.judging.agreement import judge_report
from app.simulation import steps
from app.simulation.report import AiFeedbackResult

ARM_NAME = "RLOO on AI labels"


def build_judge(
    ctx: steps.LoopContext, number: int, current: int, queue: int, human_pairs: int
) -> AiFeedbackResult:
    """The seed, the judge and its labels of `queue` (the round's comparison queue), and the
    reward model trained on the judges' labels; `human_pairs` is the human arm's snapshot. The
    arm's policy is trained and measured by the caller (loop._round), like the other arms."""
    config = ctx.config
    seed_queue = steps.make_queue(ctx, f"Round {number} judge seed", QueueKind.comparison, 1)
    ctx.seed_queues.append(seed_queue)
    ctx.log(f"round {number}: AI feedback: people label a seed for the judge")
    # Fresh answers, not the comparison queue's: a seed of their own.
    steps.sample_into_queue(
        ctx, current, ctx.train_prompts[: config.ai_seed_prompts], seed_queue,
        samples_per_prompt=config.samples_per_prompt, seed=config.seed + number + 5000,
    )  # fmt: skip
    assert ctx.noise is not None
    steps.label(ctx, seed_queue, noise=ctx.noise)
    seeds = steps.snapshot(
        ctx, f"round {number} judge seed", SnapshotKind.preference, list(ctx.seed_queues)
    )
    judge_run = steps.train(ctx, _reward_run(ctx, current, seeds))
    judge = steps.output_model(ctx, judge_run)
    ctx.log(f"round {number}: AI feedback: the judge (model {judge}) labels the round's queue")
    labels_run = steps.train(
        ctx, RunCreate(kind="judge", base_model_id=judge, hyperparameters={"queue_id": queue})
    )
    ai_pairs = steps.snapshot(
        ctx,
        f"round {number} judge labels",
        SnapshotKind.preference,
        list(ctx.comparison_queues),
        label_sources="ai",
    )
    ai_reward_run = steps.train(ctx, _reward_run(ctx, current, ai_pairs))
    with ctx.sessions() as db:
        found = [
            judged
            for judged in judge_report(db, ctx.project_id, queue_id=queue).judges
            if judged.model_id == judge
        ]
    return AiFeedbackResult(
        seed_queue_id=seed_queue,
        judge_model_id=judge,
        judge_reward_run_id=judge_run,
        judge_run_id=labels_run,
        judge_tasks=found[0].labels if found else 0,
        judge_agreement=found[0].overall if found else None,
        ai_reward_model_id=steps.output_model(ctx, ai_reward_run),
        ai_reward_run_id=ai_reward_run,
        ai_label_accuracy=_hidden_accuracy(ctx, ai_pairs),
        human_label_accuracy=_hidden_accuracy(ctx, human_pairs),
        seed_comparisons=steps.human_comparisons(ctx, ctx.seed_queues),
        human_comparisons=steps.human_comparisons(ctx, ctx.comparison_queues),
        judge_seconds=sum(_seconds(ctx, run) for run in (judge_run, labels_run, ai_reward_run)),
    )


def _reward_run(ctx: steps.LoopContext, current: int, snapshot_id: int) -> RunCreate:
    config = ctx.config
    return RunCreate(
        kind="reward",
        base_model_id=current,
        snapshot_id=snapshot_id,
        hyperparameters={
            "max_steps": config.reward_steps,
            "learning_rate": config.reward_learning_rate,
            "seed": config.seed,
        },
    )


def _hidden_accuracy(ctx: steps.LoopContext, snapshot_id: int) -> float | None:
    # Every labeled pair of the snapshot, both splits.
    rows = [
        *steps.snapshot_rows(ctx, snapshot_id, "train"),
        *steps.snapshot_rows(ctx, snapshot_id, "test"),
    ]
    return steps.hidden_accuracy(rows)


def _seconds(ctx: steps.LoopContext, run_id: int) -> float:
    run = steps.run_row(ctx, run_id)
    if run.started_at is None or run.finished_at is None:
        return 0.0
    return (run.finished_at - run.started_at).total_seconds()
