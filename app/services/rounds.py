"""A project's rounds of the loop, read from its runs and the models they registered, like the
iterated rounds of Llama 2's RLHF.

- Round 0 is supervised fine-tuning: every SFT run of the project, and the policies they made.
- Round k+1 is every run that starts from a round-k policy: the reward models trained from it
  (their preference data was sampled and judged after it existed) and the DPO, PPO, RLOO and
  GRPO runs that start from it, whose policies are round k+1's.
Runs of other kinds (generation, scoring) and runs from a base model that no round made are in
no round.

The data collected for round k is the labels made between round k-1's first policy and round
k's first run (for round 0: everything before its first SFT run): demonstrations, comparisons
and the pairs they yielded, people's counted apart from a model's (source "ai": judge and
critique runs). Comparisons of evaluation queues are held out: they judge policies,
they are not data to train the next one on.

Each new policy is put against the policy its run started from, by two different figures that
are never mixed up: the human win rate of the latest side-by-side evaluation with the new
policy as A and its start as B, and the win rate the run's own reward model gave it over its
start (the run's metrics["eval"]["win_rate"]), which a policy can game.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.models import (
    Comparison,
    Demonstration,
    Evaluation,
    LabelSource,
    Model,
    ModelRole,
    Pair,
    Prompt,
    Run,
    RunKind,
    Task,
)
from app.schemas.evaluations import (
    HumanWinRate,
    PolicyWinRate,
    RoundData,
    RoundModel,
    RoundOut,
    RoundRun,
)
from app.services.evaluations import evaluation_result
from app.services.prompts import get_project_checked

# Runs that start from a policy of the round before.
FROM_POLICY = (RunKind.reward, RunKind.dpo, RunKind.ppo, RunKind.rloo, RunKind.grpo)


def project_rounds(db: Session, project_id: int) -> list[RoundOut]:
    get_project_checked(db, project_id)
    every_run = list(
        db.scalars(
            select(Run)
            .where(Run.project_id == project_id, Run.kind.in_([RunKind.sft, *FROM_POLICY]))
            .order_by(Run.created_at, Run.id)
        )
    )
    models = {
        model.id: model
        for model in db.scalars(
            select(Model).where(
                Model.id.in_(
                    [run.output_model_id for run in every_run if run.output_model_id]
                    + [run.base_model_id for run in every_run if run.base_model_id]
                )
            )
        )
    }
    rounds: list[list[Run]] = []
    current = [run for run in every_run if run.kind == RunKind.sft]
    while current:
        rounds.append(current)
        starts = {model.id for model in _policies(current, models)}
        current = [
            run for run in every_run if run.kind in FROM_POLICY and run.base_model_id in starts
        ]
    found: list[RoundOut] = []
    since: datetime | None = None
    for number, round_runs in enumerate(rounds):
        until = round_runs[0].created_at
        policies = _policies(round_runs, models)
        found.append(
            RoundOut(
                number=number,
                runs=[_round_run(run) for run in round_runs],
                models=[
                    RoundModel(id=model.id, name=model.name, role=model.role.value, run_id=run.id)
                    for run in round_runs
                    if (model := models.get(run.output_model_id or 0)) is not None
                ],
                data=_data(db, project_id, since, until),
                policies=[
                    _win_rates(db, project_id, run, models)
                    for run in _made_policy(round_runs, models)
                ],
            )
        )
        since = min((model.created_at for model in policies), default=None)
    return found


def _policies(round_runs: Iterable[Run], models: dict[int, Model]) -> list[Model]:
    return [models[run.output_model_id or 0] for run in _made_policy(round_runs, models)]


def _made_policy(round_runs: Iterable[Run], models: dict[int, Model]) -> list[Run]:
    """The runs that registered a policy (a reward run registers a reward model)."""
    return [
        run
        for run in round_runs
        if run.output_model_id in models and models[run.output_model_id].role == ModelRole.policy
    ]


def _round_run(run: Run) -> RoundRun:
    return RoundRun(
        id=run.id,
        kind=run.kind,
        status=run.status,
        base_model_id=run.base_model_id,
        output_model_id=run.output_model_id,
        created_at=run.created_at,
    )


def _data(db: Session, project_id: int, since: datetime | None, until: datetime) -> RoundData:
    def window(column: InstrumentedAttribute[datetime]) -> list[ColumnElement[bool]]:
        return [column < until] if since is None else [column >= since, column < until]

    evaluation_queues = select(Evaluation.queue_id).where(Evaluation.project_id == project_id)
    not_held_out = or_(
        Comparison.task_id.is_(None),
        Comparison.task_id.not_in(select(Task.id).where(Task.queue_id.in_(evaluation_queues))),
    )
    demonstrations = _by_maker(
        db.execute(
            select(Demonstration.source, func.count(Demonstration.id))
            .join(Prompt, Prompt.id == Demonstration.prompt_id)
            .where(Prompt.project_id == project_id, *window(Demonstration.created_at))
            .group_by(Demonstration.source)
        ).all()
    )
    comparisons = _by_maker(
        db.execute(
            select(Comparison.source, func.count(Comparison.id))
            .join(Prompt, Prompt.id == Comparison.prompt_id)
            .where(
                Prompt.project_id == project_id,
                Comparison.rewrite_in_comparison_id.is_(None),
                not_held_out,
                *window(Comparison.created_at),
            )
            .group_by(Comparison.source)
        ).all()
    )
    pairs = db.scalar(
        select(func.count(Pair.id))
        .join(Comparison, Comparison.id == Pair.comparison_id)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(
            Prompt.project_id == project_id,
            Comparison.source != LabelSource.ai,
            not_held_out,
            *window(Comparison.created_at),
        )
    )
    return RoundData(
        since=since,
        until=until,
        demonstrations=demonstrations[False],
        comparisons=comparisons[False],
        pairs=int(pairs or 0),
        ai_demonstrations=demonstrations[True],
        ai_comparisons=comparisons[True],
    )


def _by_maker(counts: Iterable[tuple[LabelSource, int]]) -> dict[bool, int]:
    """Counts by label source as {made by a model: count}: people's (labelers' and imported)
    under False, source "ai" under True."""
    found = {False: 0, True: 0}
    for source, count in counts:
        found[source == LabelSource.ai] += int(count)
    return found


def _win_rates(db: Session, project_id: int, run: Run, models: dict[int, Model]) -> PolicyWinRate:
    assert run.output_model_id is not None
    policy = models[run.output_model_id]
    start = models.get(run.base_model_id or 0)
    human: HumanWinRate | None = None
    if start is not None:
        # The latest evaluation against the start policy itself: one against best-of-N
        # sampling of it (a reranked baseline) answers another question.
        candidates = db.execute(
            select(Evaluation.id, Run.hyperparameters)
            .outerjoin(Run, Run.id == Evaluation.run_id)
            .where(
                Evaluation.project_id == project_id,
                Evaluation.model_a_id == policy.id,
                Evaluation.model_b_id == start.id,
            )
        ).all()
        plain = [
            candidate_id
            for candidate_id, params in candidates
            if int((params or {}).get("compare_best_of", 1)) == 1
        ]
        evaluation_id = max(plain, default=None)
        if evaluation_id is not None:
            result = evaluation_result(db, evaluation_id)
            human = HumanWinRate(
                evaluation_id=evaluation_id,
                win_rate=result.win_rate,
                ci_low=result.ci_low,
                ci_high=result.ci_high,
                judgements=result.judgements,
            )
    automatic = (run.metrics.get("eval") or {}).get("win_rate")
    return PolicyWinRate(
        model_id=policy.id,
        model_name=policy.name,
        run_id=run.id,
        start_model_id=start.id if start else run.base_model_id,
        start_model_name=start.name if start else None,
        human=human,
        reward_model_win_rate=float(automatic)
        if isinstance(automatic, int | float) and not isinstance(automatic, bool)
        else None,
    )
