"""The loop demo's steps: each a service call (or a wait for a run), named for what a
researcher would do, so app/simulation/loop.py reads as the loop itself."""

from __future__ import annotations

import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import (
    PromptCategory,
    QueueKind,
    Response,
    Role,
    Run,
    RunStatus,
    SnapshotKind,
    Task,
    TaskResponse,
    User,
)
from app.schemas.projects import ProjectCreate
from app.schemas.prompts import PromptCreate
from app.schemas.queues import QueueCreate
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.schemas.training import ModelRegister, RunCreate
from app.schemas.users import TokenCreate, UserCreate
from app.services import auth, projects, prompts, queues, registry, runs, users
from app.services.snapshots import create_snapshot
from app.settings import Settings
from app.simulation.judge import Judge
from app.simulation.labeler import SimulatedLabeler, create_labeler_accounts
from app.simulation.world import TEMPLATES, TOPICS

FINISHED = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}


class LoopError(RuntimeError):
    """A step of the loop failed (a run failed, a worker never came)."""


@dataclass(frozen=True)
class LoopConfig:
    seed: int = 0
    rounds: int = 2
    labelers: int = 8
    # Demonstrations per training prompt (each by another labeler): 48 prompts x 4 = 192.
    demonstrations_per_prompt: int = 4
    held_out_prompts: int = 12
    samples_per_prompt: int = 4
    comparison_overlap: int = 3
    target_agreement: float = 0.73
    # Each held-out prompt is answered this many times per evaluation (a task each).
    evaluation_repeats: int = 8
    # Each round's kept policy also meets best-of-N sampling of its start policy (1: skip).
    baseline_best_of: int = 4
    sft_steps: int = 800
    reward_steps: int = 80
    rloo_steps: int = 80
    ppo_steps: int = 20
    dpo_steps: int = 40
    max_new_tokens: int = 12
    temperature: float = 1.0
    evaluation_temperature: float = 0.7
    run_timeout: float = 1800.0


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
    held_out: list[int] = field(default_factory=list)
    labelers: list[tuple[str, int]] = field(default_factory=list)  # (token, seed)
    comparison_queues: list[int] = field(default_factory=list)


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
        texts = [template.format(topic=topic) for template in TEMPLATES for topic in TOPICS]
        rng.shuffle(texts)
        ids = [
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
    ctx.held_out, ctx.train_prompts = ids[: config.held_out_prompts], ids[config.held_out_prompts :]
    accounts = create_labeler_accounts(
        ctx.http, admin_token, [f"sim-{suffix}-{index}" for index in range(config.labelers)]
    )
    ctx.labelers = [(account.token, config.seed * 1000 + i) for i, account in enumerate(accounts)]
    ctx.log(
        f"project {ctx.project_id}: {len(ctx.train_prompts)} training and "
        f"{len(ctx.held_out)} held-out prompts, {config.labelers} simulated labelers"
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
        SimulatedLabeler(ctx.http, token, Judge(noise, seed), seed=seed)
        for token, seed in ctx.labelers
    ]
    while waiting:
        busy = []
        for labeler in waiting:
            done = labeler.work(queue_id, limit=TURN)
            if done.submitted + done.skipped == TURN:
                busy.append(labeler)
        waiting = busy


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


def snapshot(ctx: LoopContext, name: str, kind: SnapshotKind, queue_ids: list[int]) -> int:
    with ctx.sessions() as db:
        snapshot = create_snapshot(
            db,
            ctx.settings,
            ctx.project_id,
            SnapshotCreate(
                name=name,
                kind=kind,
                filters=SnapshotFilters(queue_ids=queue_ids, seed=ctx.config.seed),
            ),
            researcher(db, ctx),
        )
        return snapshot.id


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
        time.sleep(0.5)
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
