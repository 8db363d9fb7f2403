"""Runs: every bad input refused before anything is queued; the claim, heartbeat, reaper,
cancel and resume rules that keep the database, not the broker, the source of truth."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Model,
    ModelRole,
    Role,
    Run,
    RunKind,
    RunMetric,
    RunStatus,
    SnapshotKind,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit
from app.schemas.training import RunCreate
from app.services import assignments, runs
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue, publish_guideline
from tests.training_factories import make_model, make_run, make_snapshot, queued_messages

WORKER = "gpu-1@host"


@pytest.fixture
def project(db: Session):
    return make_project(db)


@pytest.fixture
def base(db: Session, settings: Settings) -> Model:
    return make_model(db, settings, "tiny-base")


def launch(db: Session, settings: Settings, project_id: int, user: User, **fields) -> Run:
    return runs.create_run(db, settings, project_id, RunCreate(**fields), acting=user)


def test_a_valid_sft_run_is_stored_queued_with_defaults_and_enqueued_once(
    db: Session, settings: Settings, project, base: Model, researcher: User
) -> None:
    snapshot = make_snapshot(db, settings, project, SnapshotKind.sft)
    run = launch(
        db,
        settings,
        project.id,
        researcher,
        kind="sft",
        base_model_id=base.id,
        snapshot_id=snapshot.id,
        hyperparameters={"learning_rate": 3e-4},
    )
    assert run.status == RunStatus.queued
    assert run.attempts == 0
    assert run.hyperparameters["learning_rate"] == 3e-4
    # Every field of the kind's schema is stored, so the run says what it will use.
    assert "batch_size" in run.hyperparameters
    assert queued_messages(settings) == 1


BAD_CONFIGS = [
    (
        {"kind": "sft", "base_model_ref": "/no/such/model"},
        "base_model_ref",
        "the model path must be inside one of the model folders (",
    ),
    (
        {"kind": "sft", "base_model_ref": "models/no-such/model"},
        "base_model_ref",
        "data/models/no-such/model",
    ),
    (
        {"kind": "sft", "base_model_ref": "someone/llama"},
        "base_model_ref",
        "'someone/llama' is not a model folder inside the model folders, and hub downloads "
        "are off on this server (SMILEY_ALLOW_HUB_MODELS); register a local folder instead",
    ),
    ({"kind": "sft", "snapshot": "preference"}, "snapshot_id", "is a preference snapshot"),
    (
        {"kind": "sft", "hyperparameters": {"learning_rate": -0.1}},
        "hyperparameters.learning_rate",
        "hyperparameters.learning_rate:",
    ),
    (
        {"kind": "sft", "hyperparameters": {"batch_size": 9}},
        "hyperparameters.batch_size",
        "a batch of 9 is larger than snapshot",
    ),
    (
        {"kind": "sft", "hyperparameters": {"warp_speed": 9}},
        "hyperparameters.warp_speed",
        "hyperparameters.warp_speed:",
    ),
    ({"kind": "dpo", "snapshot": "sft"}, "snapshot_id", "needs a preference snapshot"),
    ({"kind": "rloo", "snapshot": "prompts"}, "reward_model_id", "needs a reward model"),
    (
        {"kind": "sft", "reward": True},
        "reward_model_id",
        "a sft run takes no reward model",
    ),
    ({"kind": "sft", "no_snapshot": True}, "snapshot_id", "a sft run needs a sft snapshot"),
]


@pytest.mark.parametrize(("config", "field", "message"), BAD_CONFIGS)
def test_bad_configs_are_refused_before_anything_is_queued(
    db: Session,
    settings: Settings,
    project,
    base: Model,
    researcher: User,
    config: dict,
    field: str,
    message: str,
) -> None:
    config = dict(config)
    kind = config.pop("kind")
    snapshot_kind = SnapshotKind(config.pop("snapshot", "sft"))
    snapshot = make_snapshot(db, settings, project, snapshot_kind)
    fields: dict = {"kind": kind, "snapshot_id": snapshot.id, **config}
    if config.pop("no_snapshot", False):
        fields.pop("snapshot_id")
        fields.pop("no_snapshot")
    if fields.pop("reward", False):
        fields["reward_model_id"] = make_model(db, settings, "rm", ModelRole.reward).id
    if "base_model_ref" not in fields:
        fields["base_model_id"] = base.id
    with pytest.raises(InvalidInput) as refused:
        launch(db, settings, project.id, researcher, **fields)
    assert refused.value.field == field
    assert message in refused.value.message
    assert db.scalar(select(func.count()).select_from(Run)) == 0
    assert queued_messages(settings) == 0


@pytest.mark.parametrize(
    ("margin", "refused"), [("none", True), ("score_gap", False), (None, False)]
)
def test_use_margin_needs_a_snapshot_with_a_margin_column(
    db: Session,
    settings: Settings,
    project,
    base: Model,
    researcher: User,
    margin: str | None,
    refused: bool,
) -> None:
    """Issue 16: a preference snapshot has a margin column only when asked for ("score_gap");
    one from before that option (no "margin" key) always had one."""
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    snapshot.filters = {"source": "pairs"} | ({"margin": margin} if margin else {})
    db.flush()
    fields = {
        "kind": "reward",
        "snapshot_id": snapshot.id,
        "base_model_id": base.id,
        "hyperparameters": {"use_margin": True},
    }
    if not refused:
        assert launch(db, settings, project.id, researcher, **fields).snapshot_id == snapshot.id
        return
    with pytest.raises(InvalidInput) as error:
        launch(db, settings, project.id, researcher, **fields)
    assert (error.value.field, error.value.message) == (
        "hyperparameters.use_margin",
        f"use_margin needs a margin column, and snapshot {snapshot.id} was made without one: "
        'make a preference snapshot with margin "score_gap"',
    )
    assert db.scalar(select(func.count()).select_from(Run)) == 0


def test_a_reward_model_must_have_the_reward_role_and_a_base_the_policy_role(
    db: Session, settings: Settings, project, base: Model, researcher: User
) -> None:
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    with pytest.raises(InvalidInput) as refused:
        launch(
            db,
            settings,
            project.id,
            researcher,
            kind="ppo",
            base_model_id=base.id,
            snapshot_id=prompts.id,
            reward_model_id=base.id,
        )
    assert refused.value.message == f"model {base.id} is a policy model, not a reward model"
    reward = make_model(db, settings, "rm", ModelRole.reward)
    sft = make_snapshot(db, settings, project, SnapshotKind.sft)
    with pytest.raises(InvalidInput) as refused:
        launch(
            db,
            settings,
            project.id,
            researcher,
            kind="sft",
            base_model_id=reward.id,
            snapshot_id=sft.id,
        )
    assert refused.value.message == f"model {reward.id} is a reward model; runs start from a policy"


def test_a_snapshot_of_another_project_is_refused(
    db: Session, settings: Settings, project, base: Model, researcher: User
) -> None:
    other = make_project(db, "Other")
    snapshot = make_snapshot(db, settings, other, SnapshotKind.sft)
    with pytest.raises(InvalidInput) as refused:
        launch(
            db,
            settings,
            project.id,
            researcher,
            kind="sft",
            base_model_id=base.id,
            snapshot_id=snapshot.id,
        )
    assert refused.value.message == f"no snapshot with id {snapshot.id} in project {project.id}"


def test_an_unknown_project_is_not_found(
    db: Session, settings: Settings, base: Model, researcher: User
) -> None:
    with pytest.raises(NotFound):
        launch(db, settings, 987654, researcher, kind="sft", base_model_id=base.id, snapshot_id=1)


@pytest.fixture
def run(db: Session, settings: Settings, project, base: Model, researcher: User) -> Run:
    snapshot = make_snapshot(db, settings, project, SnapshotKind.sft)
    return make_run(db, project, base, snapshot, creator=researcher)


def test_only_one_claim_wins_and_a_finished_run_is_never_claimed(db: Session, run: Run) -> None:
    claimed = runs.claim_run(db, run.id, WORKER)
    assert claimed is not None
    assert (claimed.status, claimed.worker_name, claimed.attempts) == (
        RunStatus.running,
        WORKER,
        1,
    )
    assert claimed.started_at is not None
    assert runs.claim_run(db, run.id, "gpu-2@host") is None
    runs.fail_run(db, run.id, WORKER, error="boom", traceback=None)
    assert runs.claim_run(db, run.id, "gpu-2@host") is None


def test_heartbeats_and_metrics_belong_to_the_claiming_worker(db: Session, run: Run) -> None:
    runs.claim_run(db, run.id, WORKER)
    assert runs.beat_run(db, run.id, WORKER) == runs.lifecycle.Beat(True, False)
    assert runs.beat_run(db, run.id, "stranger").owned is False
    assert runs.record_metrics(db, run.id, WORKER, 5, {"loss": 2.5, "learning_rate": 1e-4}, 0.25)
    assert not runs.record_metrics(db, run.id, "stranger", 6, {"loss": 0.1}, 0.5)
    db.refresh(run)
    assert run.progress == 0.25
    assert run.metrics == {"train": {"loss": 2.5, "learning_rate": 1e-4, "step": 5}}
    rows = runs.run_metrics(db, run.id)
    assert [(row.step, row.values) for row in rows] == [(5, {"loss": 2.5, "learning_rate": 1e-4})]
    assert runs.run_metrics(db, run.id, after_step=5) == []


def test_a_completed_run_registers_its_model_with_lineage(
    db: Session, settings: Settings, run: Run, base: Model
) -> None:
    runs.claim_run(db, run.id, WORKER)
    out = settings.data_dir / "runs" / str(run.id) / "model"
    done = runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={"eval_loss": 1.25},
        model_dir=out,
        role=ModelRole.policy,
        settings_used={"bf16": False},
        stopped=False,
    )
    assert done is not None
    assert (done.status, done.progress) == (RunStatus.succeeded, 1.0)
    assert done.metrics["eval"] == {"eval_loss": 1.25}
    assert done.artifacts["settings"] == {"bf16": False}
    model = db.get(Model, done.output_model_id)
    assert model is not None
    assert (model.name, model.role, model.path, model.base_model_id) == (
        f"run-{run.id}-sft",
        ModelRole.policy,
        f"runs/{run.id}/model",
        base.id,
    )


def test_a_run_stopped_by_cancel_is_cancelled_and_registers_nothing(
    db: Session, settings: Settings, run: Run, researcher: User
) -> None:
    runs.claim_run(db, run.id, WORKER)
    assert runs.request_cancel(db, run.id, acting=researcher).cancel_requested is True
    assert runs.beat_run(db, run.id, WORKER).cancel_requested is True
    done = runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={},
        model_dir=settings.data_dir / "x",
        role=ModelRole.policy,
        settings_used={},
        stopped=True,
    )
    assert done is not None
    assert (done.status, done.output_model_id) == (RunStatus.cancelled, None)
    with pytest.raises(Conflict, match="already cancelled"):
        runs.request_cancel(db, run.id, acting=researcher)


def test_cancelling_a_queued_run_ends_it_at_once(db: Session, run: Run, researcher: User) -> None:
    cancelled = runs.request_cancel(db, run.id, acting=researcher)
    assert cancelled.status == RunStatus.cancelled
    assert cancelled.finished_at is not None
    assert runs.claim_run(db, run.id, WORKER) is None


def test_the_reaper_marks_only_stale_runs_and_their_worker_loses_them(
    db: Session, settings: Settings, run: Run, researcher: User
) -> None:
    runs.claim_run(db, run.id, WORKER)
    assert runs.reap_stale_runs(db, stale_after=timedelta(seconds=60)) == []
    later = utcnow() + timedelta(seconds=61)
    assert runs.reap_stale_runs(db, stale_after=timedelta(seconds=60), now=later) == [run.id]
    db.refresh(run)
    assert run.status == RunStatus.failed
    assert run.error.startswith(f"worker lost: {WORKER} sent no heartbeat since ")
    assert run.artifacts["worker_lost"] is True
    # The old worker wakes up: nothing it writes lands.
    assert runs.beat_run(db, run.id, WORKER).owned is False
    assert not runs.record_metrics(db, run.id, WORKER, 9, {"loss": 1.0}, 0.9)
    assert not runs.fail_run(db, run.id, WORKER, error="late", traceback=None)
    lost_error = run.error
    resumed = runs.resume_run(db, settings, run.id, acting=researcher)
    assert (resumed.status, resumed.error) == (RunStatus.queued, None)
    assert resumed.artifacts["previous_errors"] == [lost_error]
    assert queued_messages(settings) == 1
    again = runs.claim_run(db, run.id, "gpu-2@host")
    assert again is not None
    assert again.attempts == 2


def test_resume_is_bounded_by_attempts_and_refused_for_live_runs(
    db: Session, settings: Settings, project, base: Model, researcher: User
) -> None:
    snapshot = make_snapshot(db, settings, project, SnapshotKind.sft)
    run = make_run(db, project, base, snapshot, max_attempts=1)
    with pytest.raises(Conflict, match="only failed or cancelled runs resume"):
        runs.resume_run(db, settings, run.id, acting=researcher)
    runs.claim_run(db, run.id, WORKER)
    runs.fail_run(db, run.id, WORKER, error="CUDA out of memory", traceback="Traceback ...")
    db.refresh(run)
    assert (run.status, run.error, run.traceback) == (
        RunStatus.failed,
        "CUDA out of memory",
        "Traceback ...",
    )
    with pytest.raises(Conflict, match=f"run {run.id} used all its 1 attempts"):
        runs.resume_run(db, settings, run.id, acting=researcher)
    assert queued_messages(settings) == 0


def test_metric_rows_are_kept_per_step(db: Session, run: Run) -> None:
    runs.claim_run(db, run.id, WORKER)
    for step in (1, 2, 3):
        runs.record_metrics(db, run.id, WORKER, step, {"loss": 4.0 - step}, step / 3)
    assert db.scalar(select(func.count()).select_from(RunMetric)) == 3
    assert [row.step for row in runs.run_metrics(db, run.id, after_step=1)] == [2, 3]


def test_unknown_run_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound, match="no run with id 5"):
        runs.get_run(db, 5)
    with pytest.raises(NotFound):
        runs.get_run(db, 2**40)


def test_every_run_kind_has_a_settings_schema_and_a_job_module() -> None:
    from app.services.runs.launching import SETTINGS_SCHEMAS

    kinds = {kind.value for kind in RunKind}
    assert kinds == {
        "sft", "reward", "dpo", "ppo", "rloo", "grpo", "generate", "score", "judge", "critique",
    }  # fmt: skip
    assert set(SETTINGS_SCHEMAS) == kinds
    jobs = Path(__file__).resolve().parents[2] / "worker" / "jobs"
    assert {kind for kind in kinds if (jobs / f"{kind}.py").is_file()} == kinds


def test_a_reward_run_is_read_against_the_labelers_agreement(
    db: Session, settings: Settings, project, base: Model
) -> None:
    """Three labelers order one pair: two one way, one the other, so one of three labeler
    pairs agree; the reward model's evaluation carries that 1/3 as its ceiling."""
    publish_guideline(db, project, 1)
    queue = make_queue(db, project, overlap=3)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    for index, first_wins in enumerate((True, True, False)):
        labeler = make_user(db, f"labeler{index}", Role.labeler)
        assignment = assignments.lease_next_task(db, queue.id, labeler)
        assert assignment is not None
        low, high = sorted(assignment.response_order or [])
        ranks = {low: 1, high: 2} if first_wins else {low: 2, high: 1}
        items = [{"response_id": rid, "rank": ranks[rid], "score": 4} for rid in (low, high)]
        assignments.submit_comparison(db, assignment.id, labeler, ComparisonSubmit(items=items))
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    run = make_run(db, project, base, snapshot, RunKind.reward)
    runs.claim_run(db, run.id, WORKER)
    done = runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={"accuracy": 0.625},
        model_dir=settings.data_dir / "rm",
        role=ModelRole.reward,
        settings_used={},
        stopped=False,
    )
    assert done is not None
    assert done.metrics["eval"] == {"accuracy": 0.625, "labeler_agreement": 1 / 3}
