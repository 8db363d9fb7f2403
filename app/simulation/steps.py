"""The loop demo's steps: each a service call (or a wait for a run), named for what a
researcher would do, so app/simulation/loop.py reads as the loop itself."""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.models import (
    Comparison,
    LabelSource,
    PromptCategory,
    QueueKind,
    Response,
    ResponseScore,
    Role,
    Run,
    RunStatus,
    Snapshot,
    SnapshotKind,
    Task,
    TaskResponse,
    User,
)
from app.schemas.projects import ProjectCreate
from app.schemas.prompts import PromptCreate
from app.schemas.queues import QueueCreate
from app.schemas.snapshots import LabelSources, SnapshotCreate, SnapshotFilters
from app.schemas.training import ModelRegister, RunCreate
from app.schemas.users import TokenCreate, UserCreate
from app.services import auth, projects, prompts, queues, registry, runs, users
from app.services.snapshots import create_snapshot
from app.settings import Settings
from app.simulation.judge import Judge, true_utility
from app.simulation.labeler import SimulatedLabeler, create_labeler_accounts
from app.simulation.report import outcome
from app.simulation.world import TEMPLATES, TOPICS, split_prompts

FINISHED = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}


class LoopError(RuntimeError):
    """A step of the loop failed (a run failed, a worker never came)."""


class LoopConfig(BaseModel):
    """The loop's settings: `smiley demo loop`'s options and its --config file (TOML or JSON,
    these names), recorded in its report. The defaults are the README's table."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: int = Field(default=0, ge=0, le=2**31)
    rounds: int = Field(default=2, ge=1, le=5)
    labelers: int = Field(default=8, ge=2, le=64)
    # Demonstrations per training prompt (each by another labeler): 44 prompts x 4 = 176.
    demonstrations_per_prompt: int = Field(default=4, ge=1, le=16)
    # Held-out prompts: the selection split (arms are chosen on it) and the final split (every
    # reported figure), about distinct topics; `held_out_templates` prompts per topic.
    selection_topics: int = Field(default=8, ge=1, le=19)
    final_topics: int = Field(default=8, ge=1, le=19)
    held_out_templates: int = Field(default=1, ge=1, le=3)
    samples_per_prompt: int = Field(default=4, ge=2, le=8)
    comparison_overlap: int = Field(default=3, ge=2, le=8)
    target_agreement: float = Field(default=0.73, gt=0.5, lt=1)
    # Human evaluations: each selection-split prompt is answered this many times (a task
    # each) when the arms are chosen, each final-split prompt this many times for the kept
    # policy's human figures.
    selection_repeats: int = Field(default=12, ge=1, le=64)
    human_repeats: int = Field(default=12, ge=1, le=64)
    # The hidden preference's evaluation (a function, no labelers): samples per final-split
    # prompt and policy; 8 prompts x 64 = 512 pairs put a 95% interval within +-0.045.
    hidden_repeats: int = Field(default=64, ge=1, le=64)
    # Each round's kept policy also meets best-of-N sampling of its start policy (1: skip).
    baseline_best_of: int = Field(default=4, ge=1, le=16)
    # A round keeps its best arm only if people preferred it to the start on the selection
    # split: "win_rate" (above 0.5) or "interval" (its 95% interval above 0.5).
    keep_rule: Literal["win_rate", "interval"] = "win_rate"
    sft_steps: int = Field(default=800, ge=1, le=100_000)
    sft_learning_rate: float = Field(default=1e-3, gt=0, le=1)
    reward_steps: int = Field(default=80, ge=1, le=100_000)
    reward_learning_rate: float | None = Field(default=None, gt=0, le=1)
    # Measured over seeds 0-2 (README): at 80 steps and a KL coefficient of 0.05 RLOO was
    # under-trained in some seeds and learned the reward model's blind spots in another (24%
    # malformed answers); 160 steps on a tighter leash reached 0.94 of the ceiling in round 1
    # with 2% malformed, and 320 steps 0.97 with 1% (round 2: 0.98 and 0.995).
    rloo_steps: int = Field(default=320, ge=0, le=100_000)
    rloo_learning_rate: float | None = Field(default=None, gt=0, le=1)
    rloo_beta: float = Field(default=0.2, ge=0, le=10)
    num_generations: int = Field(default=4, ge=2, le=16)
    ppo_steps: int = Field(default=20, ge=0, le=100_000)
    ppo_learning_rate: float | None = Field(default=None, gt=0, le=1)
    ppo_kl_coef: float = Field(default=0.05, ge=0, le=10)
    rl_batch_size: int = Field(default=16, ge=1, le=1024)
    # DPO's defaults, measured over seeds 0-2 (round 1, README; bench/results/loop/sweeps/):
    # on people's pairs at 40 steps, 1e-4 and beta 0.1 it reached 0.58 over SFT, and longer
    # it drifted into malformed answers (160 steps on the reward model's pairs: 32%). With the
    # chosen answers' likelihood in the loss (RPO, sft_weight 1), 400 steps at 3e-4 and a
    # tighter leash (beta 0.6) on the reward model's pairs: 0.69, 2% malformed.
    dpo_steps: int = Field(default=400, ge=0, le=100_000)
    dpo_learning_rate: float = Field(default=3e-4, gt=0, le=1)
    dpo_beta: float = Field(default=0.6, gt=0, le=10)
    dpo_loss_type: Literal["sigmoid", "hinge", "ipo"] = "sigmoid"
    # RPO: this times the chosen answers' negative log-likelihood joins DPO's loss (0: off).
    dpo_sft_weight: float = Field(default=1.0, ge=0, le=10)
    # DPO's pairs: "reward_model", the loop's own: the start policy answers every training
    # prompt `dpo_samples` times into a queue of its own and a judge run ranks each task's
    # answers with the round's reward model (labels of source "ai"); "pairs", every labeler's
    # pairs of the round's comparisons; "consensus", one per consensus pair of tasks whose
    # labelers agree at least `dpo_min_agreement`.
    dpo_pairs: Literal["pairs", "consensus", "reward_model"] = "reward_model"
    dpo_min_agreement: float | None = Field(default=None, ge=0, le=1)
    # (A comparison task shows at most 9 answers.)
    dpo_samples: int = Field(default=8, ge=2, le=9)
    # The AI-feedback arm (app/simulation/ai_feedback.py): RLOO on a reward model trained on a
    # judge's labels of the round's queue, the judge trained on people's labels of a seed of
    # `ai_seed_prompts` training prompts (one label each).
    ai_arm: bool = True
    ai_seed_prompts: int = Field(default=11, ge=1, le=60)
    max_new_tokens: int = Field(default=12, ge=1, le=256)
    temperature: float = Field(default=1.0, gt=0, le=10)
    evaluation_temperature: float = Field(default=0.7, gt=0, le=10)
    run_timeout: float = Field(default=1800.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> LoopConfig:
        if self.selection_topics + self.final_topics > len(TOPICS):
            raise ValueError(
                f"selection_topics + final_topics is at most {len(TOPICS)}, the world's topics"
            )
        if self.rloo_steps == 0 and self.ppo_steps == 0 and self.dpo_steps == 0:
            raise ValueError("every arm is off: give RLOO, PPO or DPO steps")
        if self.rl_batch_size % self.num_generations:
            raise ValueError("rl_batch_size must be a multiple of num_generations")
        training = len(TOPICS) * len(TEMPLATES) - (
            (self.selection_topics + self.final_topics) * self.held_out_templates
        )
        if self.ai_arm and self.ai_seed_prompts > training:
            raise ValueError(
                f"ai_seed_prompts is at most the {training} training prompts these splits leave"
            )
        if self.ai_arm and not self.rloo_steps:
            raise ValueError("the AI-feedback arm trains RLOO: give RLOO steps, or ai_arm false")
        if self.dpo_min_agreement is not None and self.dpo_pairs != "consensus":
            raise ValueError("dpo_min_agreement filters consensus pairs: set dpo_pairs consensus")
        if "dpo_samples" in self.model_fields_set and self.dpo_pairs != "reward_model":
            raise ValueError(
                "dpo_samples is how many answers the reward model ranks: set dpo_pairs reward_model"
            )
        return self


def load_config(path: Path, **overrides: Any) -> LoopConfig:
    """A LoopConfig from a TOML or JSON file (by its suffix), then `overrides` (None: not
    given) on top; a ValueError names what is wrong."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ValueError(f"{path} is not valid {kind}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a table of settings")
    return config_with(LoopConfig.model_validate(data), **overrides)


def config_with(config: LoopConfig, **overrides: Any) -> LoopConfig:
    """`config` with the given (not None) settings replaced, checked again."""
    given = {name: value for name, value in overrides.items() if value is not None}
    # Only the settings given (exclude_unset): some checks look at which were given.
    return LoopConfig.model_validate({**config.model_dump(exclude_unset=True), **given})


@dataclass
class LoopContext:
    settings: Settings
    sessions: sessionmaker[Session]
    http: httpx.Client
    config: LoopConfig
    log: Callable[[str], None]
    researcher_id: int = 0
    project_id: int = 0
    train_prompts: list[int] = field(default_factory=list)
    selection: list[int] = field(default_factory=list)
    final: list[int] = field(default_factory=list)
    # The labelers' noise, calibrated once on round 1's comparisons and kept for the whole
    # loop (comparisons and evaluations alike).
    noise: float | None = None
    labelers: list[tuple[str, int]] = field(default_factory=list)  # (token, seed)
    comparison_queues: list[int] = field(default_factory=list)
    # The AI-feedback arm's seed queues (people's labels its judges learn from), one a round.
    seed_queues: list[int] = field(default_factory=list)


def set_up(ctx: LoopContext) -> None:
    config, rng = ctx.config, random.Random(ctx.config.seed)
    suffix = f"{int(time.time())}-{config.seed}"
    with ctx.sessions() as db:
        admin, _ = users.create_user(
            db, UserCreate(username=f"loop-admin-{suffix}", role=Role.admin, password=_password())
        )
        researcher, _ = users.create_user(
            db,
            UserCreate(
                username=f"loop-researcher-{suffix}", role=Role.researcher, password=_password()
            ),
        )
        ctx.researcher_id = researcher.id
        _, admin_token = auth.create_api_token(db, admin, TokenCreate(name="loop demo"))
        project = projects.create_project(
            db, ProjectCreate(name=f"Loop demo {suffix}"), acting=admin
        )
        ctx.project_id = project.id
        splits = split_prompts(
            rng, config.selection_topics, config.final_topics, config.held_out_templates
        )
        ctx.train_prompts, ctx.selection, ctx.final = (
            [
                prompts.create_prompt(
                    db,
                    project.id,
                    PromptCreate(
                        messages=[{"role": "user", "content": text}],
                        category=PromptCategory.open_qa,
                        source="loop demo",
                    ),
                    researcher,
                ).id
                for text in texts
            ]
            for texts in splits
        )
    accounts = create_labeler_accounts(
        ctx.http, admin_token, [f"sim-{suffix}-{index}" for index in range(config.labelers)]
    )
    ctx.labelers = [(account.token, config.seed * 1000 + i) for i, account in enumerate(accounts)]
    ctx.log(
        f"project {ctx.project_id}: {len(ctx.train_prompts)} training prompts, "
        f"{len(ctx.selection)} held out for selection and {len(ctx.final)} for the final "
        f"figures (distinct topics), {config.labelers} simulated labelers"
    )


def build_base_model(ctx: LoopContext) -> int:
    folder = ctx.settings.data_dir / "models" / f"loop-base-{ctx.project_id}"
    if not folder.exists():
        # A child process: this one (app/) never imports torch.
        built = subprocess.run(
            [sys.executable, "-m", "worker.demo", str(folder)], capture_output=True, text=True
        )
        if built.returncode != 0:
            raise LoopError("building the tiny model failed:\n" + built.stderr[-2000:])
    with ctx.sessions() as db:
        model = registry.register_model(
            db,
            ctx.settings,
            ModelRegister(
                name=f"loop-base-{ctx.project_id}",
                path=str(folder.relative_to(ctx.settings.data_dir)),
            ),
            acting=researcher(db, ctx),
            project_id=ctx.project_id,
        )
        return model.id


def make_queue(ctx: LoopContext, name: str, kind: QueueKind, overlap: int) -> int:
    with ctx.sessions() as db:
        queue = queues.create_queue(
            db,
            ctx.project_id,
            QueueCreate(name=name, kind=kind, overlap=overlap),
            researcher(db, ctx),
        )
        return queue.id


# Tasks a labeler does before the next one takes a turn.
TURN = 8


def label(ctx: LoopContext, queue_id: int, *, noise: float) -> None:
    """The simulated labelers take turns on the queue (as a team working at once would share
    it) until none has anything left to do."""
    waiting = [
        SimulatedLabeler(ctx.http, token, Judge(noise, seed), seed=seed, order_seed=seed)
        for token, seed in ctx.labelers
    ]
    while waiting:
        busy = []
        for labeler in waiting:
            done = labeler.work(queue_id, limit=TURN)
            if done.submitted + done.skipped == TURN:
                busy.append(labeler)
        waiting = busy


def human_comparisons(ctx: LoopContext, queue_ids: list[int]) -> int:
    """The comparisons people submitted on these queues (what their labels cost)."""
    with ctx.sessions() as db:
        return (
            db.scalar(
                select(func.count(Comparison.id))
                .join(Task, Task.id == Comparison.task_id)
                .where(Task.queue_id.in_(queue_ids), Comparison.source == LabelSource.labeler)
            )
            or 0
        )


def candidate_pairs(ctx: LoopContext, queue_id: int) -> list[tuple[str, str]]:
    """The answer pairs the queue's tasks ask labelers to order (what the noise is calibrated
    on, so that agreement on this queue comes out near the target)."""
    with ctx.sessions() as db:
        rows = db.execute(
            select(TaskResponse.task_id, Response.content)
            .join(Task, Task.id == TaskResponse.task_id)
            .join(Response, Response.id == TaskResponse.response_id)
            .where(Task.queue_id == queue_id)
        )
        by_task: dict[int, list[str]] = {}
        for task_id, content in rows:
            by_task.setdefault(task_id, []).append(content)
    pairs = [pair for texts in by_task.values() for pair in combinations(texts, 2)]
    if not pairs:
        raise LoopError(f"queue {queue_id} got no comparison tasks")
    return pairs


def snapshot(
    ctx: LoopContext,
    name: str,
    kind: SnapshotKind,
    queue_ids: list[int],
    *,
    source: Literal["pairs", "consensus"] | None = None,
    min_agreement: float | None = None,
    label_sources: LabelSources = "human",
) -> int:
    with ctx.sessions() as db:
        snapshot = create_snapshot(
            db,
            ctx.settings,
            ctx.project_id,
            SnapshotCreate(
                name=name,
                kind=kind,
                source=source,
                filters=SnapshotFilters(
                    queue_ids=queue_ids,
                    seed=ctx.config.seed,
                    min_agreement=min_agreement,
                    label_sources=label_sources,
                ),
            ),
            researcher(db, ctx),
        )
        return snapshot.id


def snapshot_rows(ctx: LoopContext, snapshot_id: int, split: str) -> list[dict[str, Any]]:
    """One split of a snapshot as its JSONL rows."""
    with ctx.sessions() as db:
        row = db.get(Snapshot, snapshot_id)
        assert row is not None
        folder = ctx.settings.data_dir / row.path
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class Sample:
    prompt_id: int
    repeat: int
    content: str
    # The generation run's reward model's score of it (None without one).
    reward: float | None


def sample_final(
    ctx: LoopContext, model: int, *, seed: int, reward_model: int, best_of: int = 1
) -> dict[tuple[int, int], Sample]:
    """`hidden_repeats` fresh answers of `model` to each final-split prompt (with `best_of`
    above 1, each the best of that many by the reward model), each scored by `reward_model`;
    by (prompt id, repeat). Only stored: no labeler sees them."""
    config = ctx.config
    run_id = train(
        ctx,
        RunCreate(
            kind="generate",
            base_model_id=model,
            reward_model_id=reward_model,
            hyperparameters={
                "prompt_ids": ctx.final,
                "samples_per_prompt": best_of,
                "best_of_n": best_of > 1,
                "repeats": config.hidden_repeats,
                "max_new_tokens": config.max_new_tokens,
                "temperature": config.evaluation_temperature,
                "seed": seed,
            },
        ),
    )
    with ctx.sessions() as db:
        rows = db.execute(
            select(Response.id, Response.prompt_id, Response.content, Response.sampling)
            .where(Response.run_id == run_id)
            .order_by(Response.id)
        ).all()
        scores = dict(
            db.execute(
                select(ResponseScore.response_id, ResponseScore.score).where(
                    ResponseScore.run_id == run_id
                )
            ).all()
        )
    return {
        (prompt_id, int(sampling["repeat"])): Sample(
            prompt_id, int(sampling["repeat"]), content, scores.get(response_id)
        )
        for response_id, prompt_id, content, sampling in rows
    }


def train(ctx: LoopContext, data: RunCreate) -> int:
    with ctx.sessions() as db:
        run_id = runs.create_run(
            db, ctx.settings, ctx.project_id, data, acting=researcher(db, ctx)
        ).id
    wait(ctx, run_id)
    return run_id


def wait(ctx: LoopContext, run_id: int) -> None:
    deadline = time.monotonic() + ctx.config.run_timeout
    while time.monotonic() < deadline:
        run = run_row(ctx, run_id)
        if run.status in FINISHED:
            if run.status != RunStatus.succeeded:
                raise LoopError(f"run {run_id} ({run.kind.value}) {run.status.value}: {run.error}")
            ctx.log(f"  run {run_id} ({run.kind.value}) succeeded: {run.metrics.get('eval', {})}")
            return
        time.sleep(0.2)
    raise LoopError(
        f"run {run_id} did not finish in {ctx.config.run_timeout:.0f} s: is a worker up?"
    )


def run_row(ctx: LoopContext, run_id: int) -> Run:
    with ctx.sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        db.expunge(run)
        return run


def output_model(ctx: LoopContext, run_id: int) -> int:
    model = run_row(ctx, run_id).output_model_id
    assert model is not None
    return model


def _password() -> str:
    # Nobody logs in as the demo's staff: they act through the services.
    return secrets.token_urlsafe(24)


def researcher(db: Session, ctx: LoopContext) -> User:
    user = db.get(User, ctx.researcher_id)
    assert user is not None
    return user


def hidden_accuracy(rows: Sequence[dict[str, object]]) -> float | None:
    """The hidden preference's accuracy on labeled preference pairs (the share whose chosen
    answer it rates higher, ties half): what a perfect reward model would score on them,
    since the labels themselves are noisy."""
    if not rows:
        return None
    return sum(
        outcome(true_utility(_answer(row["chosen"])), true_utility(_answer(row["rejected"])))
        for row in rows
    ) / len(rows)


def _answer(value: object) -> str:
    # A snapshot's chosen/rejected: the answer's messages (conversational) or its text.
    if isinstance(value, list):
        return str(value[-1]["content"])
    return str(value)


def sample_into_queue(
    ctx: LoopContext,
    model: int,
    prompt_ids: list[int],
    queue_id: int,
    *,
    samples_per_prompt: int,
    seed: int,
) -> int:
    """A generation run: `model` answers each prompt `samples_per_prompt` times, one comparison
    task of `queue_id` per prompt; its run id once it has finished."""
    config = ctx.config
    return train(
        ctx,
        RunCreate(
            kind="generate",
            base_model_id=model,
            hyperparameters={
                "prompt_ids": prompt_ids,
                "samples_per_prompt": samples_per_prompt,
                "max_new_tokens": config.max_new_tokens,
                "temperature": config.temperature,
                "seed": seed,
                "target_queue_id": queue_id,
            },
        ),
    )


def rloo_run(ctx: LoopContext, current: int, prompt_data: int, reward_model: int) -> RunCreate:
    """A round's RLOO from `current` against `reward_model`, with the loop's settings (the
    human arm's and the AI-feedback arm's alike)."""
    config = ctx.config
    return RunCreate(
        kind="rloo",
        base_model_id=current,
        snapshot_id=prompt_data,
        reward_model_id=reward_model,
        hyperparameters={
            "max_steps": config.rloo_steps,
            "learning_rate": config.rloo_learning_rate,
            "beta": config.rloo_beta,
            "num_generations": config.num_generations,
            "batch_size": config.rl_batch_size,
            "max_completion_length": config.max_new_tokens,
            "seed": config.seed,
        },
    )
