"""`smiley demo loop`: the whole human-feedback loop on a CPU, with simulated labelers.

Everything a researcher does goes through the services (as the pages and the API would); every
label comes from simulated labelers working through the JSON API like any client. The models
are trained by a real worker (the caller provides one), from snapshots of those labels.

Round 0: the labelers write demonstrations for the training prompts, half helpful and half
terse (as people differ); SFT on them gives a policy that says both kinds of thing.
Round k (1, 2, ...): the current policy samples N answers per training prompt into a comparison
queue; the labelers rank them (their noise calibrated once, on round 1's own pairs, so that they
agree about 73% of the time, and kept for the whole loop and its evaluations); a reward model is
trained on all the preference labels so far; RLOO (and PPO) against it and DPO each make a new
policy from the current one (DPO, by default, on the current policy's answers ranked by that
reward model; `dpo_pairs` "pairs" takes the labelers' own). Each new policy meets the current
one in a side-by-side evaluation on the selection split of held-out prompts, which the labelers
judge; the arm with the best human win rate becomes the next round's current policy if people
preferred it to the start (else the round keeps its start, and says so). Every reported figure
comes from the final split, prompts about other topics, with fresh samples: the hidden
preference itself, without noise, on many samples (the win rate the loop is measured by), the
round's reward model on the same pairs, and a human evaluation of the kept policy.

Every run takes the loop's seed, and the simulated labelers judge each comparison in an order
of their own seed (labeler.seeded_order), not the lease's random display order: the same seed
in a fresh data folder gives the same report.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.models import QueueKind, SnapshotKind
from app.schemas.evaluations import EvaluationCreate, EvaluationResult
from app.schemas.training import RunCreate
from app.services import evaluations, tasks
from app.services.agreement.service import agreement_report
from app.settings import Settings
from app.simulation import ai_feedback, steps
from app.simulation.judge import MAX_UTILITY, SHAPE, noise_for_agreement, true_utility
from app.simulation.report import (
    ArmResult,
    Comparison,
    HiddenJudgement,
    LoopReport,
    PairedRate,
    RoundResult,
    outcome,
)
from app.simulation.steps import LoopConfig, LoopError, Sample

__all__ = ["LoopConfig", "LoopError", "compare_samples", "hidden_preference", "keep", "run_loop"]

Samples = dict[tuple[int, int], Sample]


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
            hyperparameters={
                "max_steps": config.sft_steps,
                "learning_rate": config.sft_learning_rate,
                "seed": config.seed,
            },
        ),
    )
    prompt_data = steps.snapshot(ctx, "training prompts", SnapshotKind.prompts, [demos])
    report = LoopReport(config=config, sft_model_id=steps.output_model(ctx, sft))
    current = report.sft_model_id
    for number in range(1, config.rounds + 1):
        result = _round(ctx, report, number, current, prompt_data)
        report.rounds.append(result)
        current = result.kept_model_id
    report.project_id = ctx.project_id
    report.seconds = time.monotonic() - started
    return report


def keep(rule: str, selection: EvaluationResult) -> tuple[bool, str]:
    """Whether a round keeps its best arm, by its human evaluation against the start on the
    selection split, and why: "win_rate" asks its win rate above 0.5, "interval" its 95%
    interval above 0.5. A round whose best arm fails keeps its start."""
    rate, low = selection.win_rate, selection.ci_low
    if rate is None or low is None:
        return False, "people judged none of its selection tasks"
    shown = f"{rate:.2f} ({low:.2f}-{selection.ci_high:.2f}) on the selection split"
    if rule == "interval":
        if low > 0.5:
            return True, f"people preferred it to the start beyond their noise: {shown}"
        return False, f"people did not prefer the best arm beyond their noise: {shown}"
    if rate > 0.5:
        return True, f"people preferred it to the start: {shown}"
    return False, f"people did not prefer the best arm to the start: {shown}"


def _round(
    ctx: steps.LoopContext, report: LoopReport, number: int, current: int, prompt_data: int
) -> RoundResult:
    config = ctx.config
    ctx.log(f"round {number}: samples of model {current} into a comparison queue")
    queue = steps.make_queue(
        ctx, f"Round {number} comparisons", QueueKind.comparison, config.comparison_overlap
    )
    ctx.comparison_queues.append(queue)
    steps.sample_into_queue(
        ctx, current, ctx.train_prompts, queue,
        samples_per_prompt=config.samples_per_prompt, seed=config.seed + number,
    )  # fmt: skip
    if ctx.noise is None:
        # Once, on round 1's own pairs: later rounds' labelers (and every evaluation's) are
        # the same people, not re-tuned with the hidden preference as the policy improves.
        ctx.noise = noise_for_agreement(config.target_agreement, steps.candidate_pairs(ctx, queue))
    ctx.log(f"round {number}: labelers rank (noise {ctx.noise:.2f})")
    steps.label(ctx, queue, noise=ctx.noise)
    pairs = steps.snapshot(
        ctx, f"round {number} preferences", SnapshotKind.preference, ctx.comparison_queues
    )
    reward_run = steps.train(
        ctx,
        RunCreate(
            kind="reward",
            base_model_id=current,
            snapshot_id=pairs,
            hyperparameters={
                "max_steps": config.reward_steps,
                "learning_rate": config.reward_learning_rate,
                "seed": config.seed,
            },
        ),
    )
    reward_model = steps.output_model(ctx, reward_run)
    with ctx.sessions() as db:
        agreement = agreement_report(db, ctx.project_id, queue_id=queue).overall
    test_pairs = steps.snapshot_rows(ctx, pairs, "test")
    result = RoundResult(
        number=number,
        start_model_id=current,
        reward_model_id=reward_model,
        reward_run_id=reward_run,
        reward_accuracy=steps.run_row(ctx, reward_run).metrics["eval"].get("accuracy"),
        hidden_accuracy=steps.hidden_accuracy(test_pairs),
        reward_test_pairs=len(test_pairs),
        labeler_agreement=agreement.pairwise_agreement,
        labeler_pairs=agreement.labeler_pairs,
        labeler_noise=ctx.noise,
        comparisons_queue_id=queue,
    )
    # Fresh final-split answers, a seed of their own per round and policy.
    seeds = iter(
        range(config.seed * 10_000 + number * 100, config.seed * 10_000 + number * 100 + 99)
    )

    def final_samples(model: int, best_of: int = 1) -> Samples:
        return steps.sample_final(
            ctx, model, seed=next(seeds), reward_model=reward_model, best_of=best_of
        )

    start_samples = final_samples(current)
    start = "SFT" if number == 1 else f"round {number - 1}"
    arm_samples: dict[str, Samples] = {}

    def measure(name: str, run_id: int) -> ArmResult:
        # People judge the arm against its start on the selection split; the hidden
        # preference and the reward model on fresh final-split answers.
        model = steps.output_model(ctx, run_id)
        selection, selection_id = _human(
            ctx, model, current, ctx.selection, config.selection_repeats
        )
        arm_samples[name] = final_samples(model)
        return ArmResult(
            name=name,
            run_id=run_id,
            model_id=model,
            selection=selection,
            selection_evaluation_id=selection_id,
            final=compare_samples(name, start, model, current, arm_samples[name], start_samples),
            run_reward_model_win_rate=steps.run_row(ctx, run_id)
            .metrics.get("eval", {})
            .get("win_rate"),
        )

    for name, data in _arms(ctx, number, current, prompt_data, pairs, reward_model):
        ctx.log(f"round {number}: {name}")
        result.arms.append(measure(name, steps.train(ctx, data)))
    best = max(result.arms, key=lambda arm: (arm.selection.win_rate or 0.0, -arm.run_id))
    kept, result.keep_reason = keep(config.keep_rule, best.selection)
    result.kept = best.name if kept else None
    ctx.log(f"round {number}: keeps {result.kept or 'its start'} ({result.keep_reason})")
    kept_model = result.kept_model_id
    kept_samples = arm_samples[best.name] if kept else start_samples
    kept_name = result.kept or "start"
    if kept:
        result.kept_human, _ = _human(ctx, kept_model, current, ctx.final, config.human_repeats)
    if number == 1:
        # SFT against a second set of its own answers: the null every row is read against.
        report.null = hidden_preference(final_samples(current), start_samples)
    else:
        sft = report.sft_model_id
        result.versus_sft = compare_samples(
            kept_name, "SFT", kept_model, sft, kept_samples, final_samples(sft)
        )
        if kept_model != sft:
            result.versus_sft.human, result.versus_sft.evaluation_id = _human(
                ctx, kept_model, sft, ctx.final, config.human_repeats
            )
    if config.baseline_best_of > 1:
        # Was the RL worth it? Best-of-N sampling from the start policy, reranked by the
        # same reward model, is the cheap alternative it must beat.
        n = config.baseline_best_of
        result.versus_best_of = compare_samples(
            kept_name, f"best of {n} of {start}", kept_model, current, kept_samples,
            final_samples(current, best_of=n), baseline_best_of=n,
        )  # fmt: skip
        if kept:
            # (A start kept against best-of-N of itself is one model: no evaluation for people.)
            result.versus_best_of.human, result.versus_best_of.evaluation_id = _human(
                ctx, kept_model, current, ctx.final, config.human_repeats,
                best_of=n, reward_model=reward_model,
            )  # fmt: skip
    if config.ai_arm:
        # Last, so that the human arms' figures are the same with the AI arm on or off.
        result.ai = ai_feedback.build_judge(ctx, number, current, queue, pairs)
        ctx.log(f"round {number}: {ai_feedback.ARM_NAME}")
        rloo = steps.rloo_run(ctx, current, prompt_data, result.ai.ai_reward_model_id)
        result.ai.arm = measure(ai_feedback.ARM_NAME, steps.train(ctx, rloo))
    return result


def _arms(
    ctx: steps.LoopContext,
    number: int,
    current: int,
    prompt_data: int,
    pairs: int,
    reward_model: int,
) -> list[tuple[str, RunCreate]]:
    config = ctx.config
    online = {
        "batch_size": config.rl_batch_size,
        "max_completion_length": config.max_new_tokens,
        "seed": config.seed,
    }
    arms = []
    if config.rloo_steps:
        arms.append(("RLOO", steps.rloo_run(ctx, current, prompt_data, reward_model)))
    if config.ppo_steps:
        arms.append(
            ("PPO", RunCreate(
                kind="ppo", base_model_id=current, snapshot_id=prompt_data,
                reward_model_id=reward_model,
                hyperparameters={
                    "max_steps": config.ppo_steps, "learning_rate": config.ppo_learning_rate,
                    "kl_coef": config.ppo_kl_coef, **online,
                },
            ))
        )  # fmt: skip
    if config.dpo_steps:
        data = pairs
        if config.dpo_pairs == "consensus":
            # Cleaner pairs: one per consensus pair, from tasks whose labelers agree enough.
            data = steps.snapshot(
                ctx, f"round {number} consensus pairs", SnapshotKind.preference,
                ctx.comparison_queues, source="consensus", min_agreement=config.dpo_min_agreement,
            )  # fmt: skip
        elif config.dpo_pairs == "reward_model":
            data = _reward_model_pairs(ctx, number, current, reward_model)
        arms.append(
            ("DPO", RunCreate(
                kind="dpo", base_model_id=current, snapshot_id=data,
                hyperparameters={
                    "max_steps": config.dpo_steps, "learning_rate": config.dpo_learning_rate,
                    "beta": config.dpo_beta, "loss_type": config.dpo_loss_type,
                    "sft_weight": config.dpo_sft_weight, "seed": config.seed,
                },
            ))
        )  # fmt: skip
    return arms


def _reward_model_pairs(
    ctx: steps.LoopContext, number: int, current: int, reward_model: int
) -> int:
    """DPO's pairs labeled by the round's reward model instead of people: the start policy
    answers every training prompt `dpo_samples` times into a queue of its own (outside the
    rounds' comparison queues, so no later reward model learns from it), a judge run ranks each
    task's answers by reward, and the snapshot takes those AI labels."""
    config = ctx.config
    queue = steps.make_queue(ctx, f"Round {number} DPO pairs", QueueKind.comparison, 1)
    steps.sample_into_queue(
        ctx, current, ctx.train_prompts, queue,
        samples_per_prompt=config.dpo_samples, seed=config.seed + number + 7000,
    )  # fmt: skip
    steps.train(
        ctx,
        RunCreate(kind="judge", base_model_id=reward_model, hyperparameters={"queue_id": queue}),
    )
    return steps.snapshot(
        ctx, f"round {number} DPO pairs", SnapshotKind.preference, [queue], label_sources="ai"
    )


def _human(
    ctx: steps.LoopContext,
    model: int,
    baseline: int,
    prompt_ids: list[int],
    repeats: int,
    *,
    best_of: int = 1,
    reward_model: int | None = None,
) -> tuple[EvaluationResult, int]:
    """A side-by-side evaluation of `model` against `baseline` on `prompt_ids`, judged by the
    simulated labelers (the loop's fixed noise); its result and id."""
    config = ctx.config
    assert ctx.noise is not None
    with ctx.sessions() as db:
        evaluation = evaluations.create_evaluation(
            db,
            ctx.settings,
            ctx.project_id,
            EvaluationCreate(
                model_a_id=model,
                model_b_id=baseline,
                prompt_ids=prompt_ids,
                repeats=repeats,
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
    steps.label(ctx, queue_id, noise=ctx.noise)
    with ctx.sessions() as db:
        return evaluations.evaluation_result(db, evaluation_id), evaluation_id


def compare_samples(
    policy: str,
    baseline: str,
    model: int,
    baseline_model: int,
    new: Samples,
    old: Samples,
    *,
    baseline_best_of: int = 1,
) -> Comparison:
    """A row of the report: `new` against `old` answers matched by (prompt, repeat), by the
    hidden preference and by the reward model that scored both (when it scored every one)."""
    keys = sorted(new.keys() & old.keys())
    if not keys:
        raise LoopError(f"{policy} and {baseline} answered no final-split prompt in common")
    rewards = [(new[key].reward, old[key].reward) for key in keys]
    automatic = (
        PairedRate.of([outcome(a, b) for a, b in rewards])  # type: ignore[arg-type]
        if all(a is not None and b is not None for a, b in rewards)
        else None
    )
    return Comparison(
        policy=policy,
        baseline=baseline,
        model_id=model,
        baseline_model_id=baseline_model,
        baseline_best_of=baseline_best_of,
        hidden=hidden_preference(new, old),
        reward_model=automatic,
    )


def hidden_preference(new: Samples, old: Samples) -> HiddenJudgement:
    """The hidden preference on matched answers (ties count half): the new answers' win rate
    with its interval, each side's mean true utility (the rule's own scale, -7 for garbage to
    2 for two warm words), the ceiling (an oracle always answering with utility 2, against the
    same old answers) and the share of new answers not in the world's answer shape."""
    keys = sorted(new.keys() & old.keys())
    if not keys:
        raise LoopError("no matched answers to judge")
    a = [true_utility(new[key].content) for key in keys]
    b = [true_utility(old[key].content) for key in keys]
    return HiddenJudgement(
        rate=PairedRate.of([outcome(x, y) for x, y in zip(a, b, strict=True)]),
        mean_utility=sum(a) / len(a),
        baseline_mean_utility=sum(b) / len(b),
        ceiling=sum(outcome(float(MAX_UTILITY), y) for y in b) / len(b),
        malformed=sum(not SHAPE.fullmatch(new[key].content) for key in keys) / len(keys),
    )
