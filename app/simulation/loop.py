"""`smiley demo loop`: the whole human-feedback loop on a CPU, with simulated labelers.

Everything a researcher does goes through the services (as the pages and the API would); every
label comes from simulated labelers working through the JSON API like any client. The models
are trained by a real worker (the caller provides one), from snapshots of those labels.

Round 0: the labelers write demonstrations for the training prompts, half helpful and half
terse (as people differ); SFT on them gives a policy that says both kinds of thing.
Round k (1, 2, ...): the current policy samples N answers per training prompt into a comparison
queue; the labelers rank them (their noise calibrated on that queue's own pairs so that they
agree about 73% of the time); a reward model is trained on all the preference labels so far;
RLOO (and PPO) against it and DPO on the pairs each make a new policy from the current one.
Each new policy meets the current one in a side-by-side evaluation on held-out prompts that the
labelers judge; the evaluation's answers are also judged by the hidden preference itself,
without noise, which is the win rate the loop is measured by. The arm with the best human
win rate becomes the next round's current policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import (
    Evaluation,
    QueueKind,
    Response,
    Run,
    SnapshotKind,
    Task,
    TaskResponse,
)
from app.schemas.evaluations import EvaluationCreate
from app.schemas.training import RunCreate
from app.services import evaluations, tasks
from app.services.agreement.service import agreement_report
from app.settings import Settings
from app.simulation import steps
from app.simulation.judge import noise_for_agreement, true_utility
from app.simulation.report import ArmResult, HiddenJudgement, LoopReport, RoundResult
from app.simulation.steps import LoopConfig, LoopError

__all__ = ["LoopConfig", "LoopError", "hidden_preference", "run_loop"]


def run_loop(
    settings: Settings,
    sessions: sessionmaker[Session],
    http: httpx.Client,
    config: LoopConfig = LoopConfig(),
    log: Callable[[str], None] = print,
) -> LoopReport:
    """Runs the loop (see the module docstring) and reports every round; needs a worker
    listening on the settings' broker and the web app answering `http`."""
    started = time.monotonic()
    ctx = steps.LoopContext(settings, sessions, http, config, log)
    steps.set_up(ctx)
    base = steps.build_base_model(ctx)
    ctx.log("round 0: demonstrations")
    demos = steps.make_queue(
        ctx, "Demonstrations", QueueKind.demonstration, config.demonstrations_per_prompt
    )
    with sessions() as db:
        tasks.add_tasks_from_prompts(db, demos, ctx.train_prompts)
    steps.label(ctx, demos, noise=0.0)
    sft_data = steps.snapshot(ctx, "round 0 demonstrations", SnapshotKind.sft, [demos])
    sft = steps.train(
        ctx,
        RunCreate(
            kind="sft",
            base_model_id=base,
            snapshot_id=sft_data,
            hyperparameters={"max_steps": config.sft_steps, "learning_rate": 1e-3},
        ),
    )
    prompt_data = steps.snapshot(ctx, "training prompts", SnapshotKind.prompts, [demos])
    report = LoopReport(config=config, sft_model_id=steps.output_model(ctx, sft))
    current = report.sft_model_id
    for number in range(1, config.rounds + 1):
        result = _round(ctx, number, current, prompt_data)
        best = result.best()
        if number > 1:
            # Progress across rounds on one scale: each round's kept policy against SFT.
            result.versus_sft = _evaluate(
                ctx, best.name, best.run_id, best.model_id, report.sft_model_id
            )
        if config.baseline_best_of > 1:
            # Was the RL worth it? Best-of-N sampling from the start policy, reranked by the
            # same reward model, is the cheap alternative it must beat.
            result.versus_best_of = _evaluate(
                ctx, best.name, best.run_id, best.model_id, current,
                best_of=config.baseline_best_of, reward_model=result.reward_model_id,
            )  # fmt: skip
        report.rounds.append(result)
        current = best.model_id
    with sessions() as db:
        overall = agreement_report(db, ctx.project_id).overall
    report.labeler_agreement = overall.pairwise_agreement
    report.project_id = ctx.project_id
    report.seconds = time.monotonic() - started
    return report


def _round(ctx: steps.LoopContext, number: int, current: int, prompt_data: int) -> RoundResult:
    config = ctx.config
    ctx.log(f"round {number}: samples of model {current} into a comparison queue")
    queue = steps.make_queue(
        ctx, f"Round {number} comparisons", QueueKind.comparison, config.comparison_overlap
    )
    ctx.comparison_queues.append(queue)
    steps.train(
        ctx,
        RunCreate(
            kind="generate",
            base_model_id=current,
            hyperparameters={
                "prompt_ids": ctx.train_prompts,
                "samples_per_prompt": config.samples_per_prompt,
                "max_new_tokens": config.max_new_tokens,
                "temperature": config.temperature,
                "seed": config.seed + number,
                "target_queue_id": queue,
            },
        ),
    )
    noise = noise_for_agreement(config.target_agreement, steps.candidate_pairs(ctx, queue))
    ctx.log(f"round {number}: labelers rank (noise {noise:.2f})")
    steps.label(ctx, queue, noise=noise)
    pairs = steps.snapshot(
        ctx, f"round {number} preferences", SnapshotKind.preference, ctx.comparison_queues
    )
    reward_run = steps.train(
        ctx,
        RunCreate(
            kind="reward",
            base_model_id=current,
            snapshot_id=pairs,
            hyperparameters={"max_steps": config.reward_steps},
        ),
    )
    reward_model = steps.output_model(ctx, reward_run)
    online = {"batch_size": 16, "max_completion_length": config.max_new_tokens, "seed": config.seed}
    arms = [
        (
            "RLOO",
            RunCreate(
                kind="rloo",
                base_model_id=current,
                snapshot_id=prompt_data,
                reward_model_id=reward_model,
                hyperparameters={"max_steps": config.rloo_steps, **online},
            ),
        ),
        (
            "DPO",
            RunCreate(
                kind="dpo",
                base_model_id=current,
                snapshot_id=pairs,
                # A gentler rate than the tiny-model default: on noisy pairs DPO at 5e-4
                # pushes both answers down until the policy loses the answer's shape.
                hyperparameters={"max_steps": config.dpo_steps, "learning_rate": 1e-4},
            ),
        ),
    ]
    if config.ppo_steps:
        arms.insert(
            1,
            (
                "PPO",
                RunCreate(
                    kind="ppo",
                    base_model_id=current,
                    snapshot_id=prompt_data,
                    reward_model_id=reward_model,
                    hyperparameters={"max_steps": config.ppo_steps, **online},
                ),
            ),
        )
    result = RoundResult(
        number=number,
        start_model_id=current,
        reward_model_id=reward_model,
        reward_run_id=reward_run,
        reward_accuracy=steps.run_row(ctx, reward_run).metrics["eval"].get("accuracy"),
        labeler_noise=noise,
        comparisons_queue_id=queue,
    )
    for name, data in arms:
        ctx.log(f"round {number}: {name}")
        run_id = steps.train(ctx, data)
        model = steps.output_model(ctx, run_id)
        result.arms.append(_evaluate(ctx, name, run_id, model, current))
    return result


def _evaluate(
    ctx: steps.LoopContext,
    name: str,
    run_id: int,
    model: int,
    baseline: int,
    *,
    best_of: int = 1,
    reward_model: int | None = None,
) -> ArmResult:
    config = ctx.config
    with ctx.sessions() as db:
        evaluation = evaluations.create_evaluation(
            db,
            ctx.settings,
            ctx.project_id,
            EvaluationCreate(
                model_a_id=model,
                model_b_id=baseline,
                prompt_ids=ctx.held_out,
                repeats=config.evaluation_repeats,
                max_new_tokens=config.max_new_tokens,
                temperature=config.evaluation_temperature,
                seed=config.seed,
                baseline_best_of=best_of,
                reward_model_id=reward_model,
            ),
            acting=steps.researcher(db, ctx),
        )
        evaluation_id, queue_id, generation = evaluation.id, evaluation.queue_id, evaluation.run_id
    assert generation is not None
    steps.wait(ctx, generation)
    steps.label(ctx, queue_id, noise=noise_for_agreement(config.target_agreement))
    with ctx.sessions() as db:
        human = evaluations.evaluation_result(db, evaluation_id)
        hidden = hidden_preference(db, evaluation_id)
        run = db.get(Run, run_id)
        assert run is not None
        automatic = run.metrics.get("eval", {}).get("win_rate")
    return ArmResult(
        name=name,
        run_id=run_id,
        model_id=model,
        baseline_model_id=baseline,
        baseline_best_of=best_of,
        evaluation_id=evaluation_id,
        human=human,
        hidden=hidden,
        reward_model_win_rate=automatic,
    )


def hidden_preference(db: Session, evaluation_id: int) -> HiddenJudgement:
    """The evaluation's tasks judged by the hidden preference itself (no noise): A's win rate
    over B (ties count half), and each model's mean true utility (the rule's own scale,
    -7 for garbage to 2 for two warm words) over its answers."""
    evaluation = db.get(Evaluation, evaluation_id)
    assert evaluation is not None
    rows = db.execute(
        select(Task.id, Response.model_id, Response.content)
        .join(TaskResponse, TaskResponse.task_id == Task.id)
        .join(Response, Response.id == TaskResponse.response_id)
        .where(Task.queue_id == evaluation.queue_id)
    )
    by_task: dict[int, dict[int, float]] = {}
    for task_id, model_id, content in rows:
        by_task.setdefault(task_id, {})[model_id] = true_utility(content)
    pairs = [
        (task[evaluation.model_a_id], task[evaluation.model_b_id]) for task in by_task.values()
    ]
    if not pairs:
        raise LoopError(f"evaluation {evaluation_id} has no tasks")
    outcomes = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs]
    return HiddenJudgement(
        win_rate=sum(outcomes) / len(outcomes),
        mean_utility=sum(a for a, _ in pairs) / len(pairs),
        baseline_mean_utility=sum(b for _, b in pairs) / len(pairs),
    )
