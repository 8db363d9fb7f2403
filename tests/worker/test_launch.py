"""Runs with `processes` above 1: the job as a 2-process `accelerate launch` group on CPU (gloo),
end to end through the runner (worker/runner.py, worker/launch.py, worker/launched.py) with the
real job modules and the tiny model. What the group must do as one: train, report each step
once (rank 0), save the model once, stop every rank on a cancel with one checkpoint, resume from
it, and leave no process behind. A SIGKILLed worker taking its group with it is in
test_training_worker.py (it needs a real worker process to kill)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import (
    Model,
    ModelRole,
    Project,
    Run,
    RunKind,
    RunMetric,
    RunStatus,
    Snapshot,
    SnapshotKind,
)
from app.settings import Settings
from tests.factories import make_project
from tests.worker.job_support import Recorder, make_context
from worker.launch import (
    SHARD_PARAMETERS,
    GroupFailed,
    accelerate_config,
    choose_strategy,
    safetensors_parameters,
)
from worker.runner import execute_run
from worker.training.synthetic import (
    preference_rows,
    prompt_rows,
    sft_rows,
    write_snapshot_folder,
)

WORKER = "group-worker@host"
# What save_model writes for the tiny policy (as a one-process run does); a reward model has
# no generation_config.json.
MODEL_FILES = [
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
]


# --- the strategy and its config, without starting anything -----------------------------------


def test_the_strategy_is_ddp_on_cpu_and_for_small_models_fsdp_from_a_billion_parameters() -> None:
    assert choose_strategy(None, 5_000_000_000, "cpu") == (
        "ddp",
        "on CPU: DDP over gloo (FSDP and DeepSpeed shard across GPUs)",
    )
    assert choose_strategy(None, 202_000_000, "cuda") == (
        "ddp",
        "202.0M parameters: a full copy per GPU fits, DDP is the fastest",
    )
    assert choose_strategy(None, SHARD_PARAMETERS, "cuda") == (
        "fsdp",
        "1.0B parameters: sharded so that each GPU holds a part",
    )
    assert choose_strategy("ddp", 8_000_000_000, "cuda") == (
        "ddp",
        "given in the run's hyperparameters",
    )
    # Tried: accelerate runs an FSDP config on CPU as plain data parallel (MULTI_CPU).
    assert choose_strategy("fsdp", 5_000_000_000, "cpu") == (
        "ddp",
        "fsdp asked for, but on CPU: DDP over gloo (FSDP and DeepSpeed shard across GPUs)",
    )


def test_deepspeed_without_deepspeed_installed_is_refused_by_name() -> None:
    pytest.importorskip("torch")
    from importlib.util import find_spec

    if find_spec("deepspeed") is not None:
        pytest.skip("DeepSpeed is installed here")
    with pytest.raises(GroupFailed, match="distributed=deepspeed-zero3 needs DeepSpeed"):
        choose_strategy("deepspeed-zero3", 10, "cuda")


def test_the_config_names_the_group_and_its_sharding() -> None:
    ddp = accelerate_config("ddp", 2, "cpu", 29600)
    assert (ddp["distributed_type"], ddp["num_processes"], ddp["main_process_port"]) == (
        "MULTI_GPU",
        2,
        29600,
    )
    assert "fsdp_config" not in ddp and "deepspeed_config" not in ddp
    fsdp = accelerate_config("fsdp", 4, "cuda", 29601)
    assert fsdp["distributed_type"] == "FSDP"
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    zero3 = accelerate_config("deepspeed-zero3", 8, "cuda", 29602)
    assert (zero3["distributed_type"], zero3["deepspeed_config"]["zero_stage"]) == ("DEEPSPEED", 3)


def test_more_processes_than_gpus_is_refused_before_anything_starts(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.launch

    monkeypatch.setattr(worker.launch, "visible_gpus", lambda: 1)
    ctx = replace(
        make_context(tmp_path, "sft", {"processes": 2}, tiny, None, Recorder()), device="cuda"
    )
    with pytest.raises(GroupFailed) as refused:
        worker.launch.run_group(ctx)
    assert str(refused.value) == (
        "processes=2 asks for a GPU each, and this worker sees 1: ask for at most 1, or run it "
        "on a worker with more GPUs"
    )
    assert not (tmp_path / "launch").exists()


def test_a_resumed_attempt_forwards_what_a_killed_runner_had_not_up_to_its_checkpoint(
    tiny: Path, tmp_path: Path
) -> None:
    from worker.launch import FORWARDED_FILE, METRICS_FILE, recover_metrics

    folder = tmp_path / "launch"
    folder.mkdir()
    lines = [json.dumps([step, {"loss": 10.0 - step}, step / 10]) + "\n" for step in range(1, 7)]
    (folder / METRICS_FILE).write_text("".join(lines) + '[7, {"loss"')
    # The killed runner had forwarded steps 1 and 2; the checkpoint is at step 4.
    (folder / FORWARDED_FILE).write_text(f"{len(lines[0]) + len(lines[1])}\n")
    recorder = Recorder()
    resumed = make_context(
        tmp_path,
        "sft",
        {"processes": 2},
        tiny,
        None,
        recorder,
        resume_from=tmp_path / "checkpoints/checkpoint-4",
    )
    recover_metrics(folder, resumed)
    assert recorder.reports == [(3, {"loss": 7.0}, 0.3), (4, {"loss": 6.0}, 0.4)]
    # Starting afresh, nothing is forwarded: every step is trained again.
    afresh = Recorder()
    recover_metrics(folder, replace(resumed, report=afresh.report, resume_from=None))
    assert afresh.reports == []
    # Killed after storing steps 3 and 4 but before moving the offset past them: the run's
    # metrics already hold them, so nothing is sent twice (a CI run once saw steps 1, 2, 1, 2).
    stored = Recorder()
    recover_metrics(folder, replace(resumed, report=stored.report, reported_through=4))
    assert stored.reports == []
    partly = Recorder()
    recover_metrics(folder, replace(resumed, report=partly.report, reported_through=3))
    assert partly.reports == [(4, {"loss": 6.0}, 0.4)]


def test_the_parameter_count_comes_from_the_safetensors_headers(tiny: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)
    # The output head shares the embedding's weights: stored, and counted, once.
    assert safetensors_parameters(tiny) == model.num_parameters() == 164_160
    assert safetensors_parameters(tiny.parent) is None


# --- end to end through the runner ---------------------------------------------------------------


@pytest.fixture
def engine(own_database: str) -> Iterator[Engine]:
    engine = make_engine(own_database)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, own_database: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=own_database,
        secret_key="test-secret-key-" + "x" * 32,
        run_heartbeat_seconds=0.2,
    )


@pytest.fixture(scope="module")
def tiny_reward(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Path:
    """A reward model for the online runs (PPO, RLOO, GRPO): the tiny model with a score head,
    trained a few steps."""
    from worker.jobs import reward

    root = tmp_path_factory.mktemp("tiny-reward")
    pairs = write_snapshot_folder(root / "pairs", "preference", preference_rows(64))
    context = make_context(root / "reward", "reward", {"max_steps": 5}, tiny, pairs, Recorder())
    return reward.run(context).model_dir


SHAPES = {
    RunKind.sft: ("sft", SnapshotKind.sft),
    RunKind.reward: ("preference", SnapshotKind.preference),
    RunKind.dpo: ("preference", SnapshotKind.preference),
    RunKind.ppo: ("prompts", SnapshotKind.prompts),
    RunKind.rloo: ("prompts", SnapshotKind.prompts),
    RunKind.grpo: ("prompts", SnapshotKind.prompts),
}
ONLINE = {RunKind.ppo, RunKind.rloo, RunKind.grpo}
# Each online kind's own settings, kept small: sampling on a CPU is the slow part. PPO saves a
# checkpoint at step 3, the step its trainer once failed at under DDP.
ONLINE_SETTINGS: dict[RunKind, dict[str, Any]] = {
    RunKind.ppo: {"max_completion_length": 6, "num_ppo_epochs": 1, "save_steps": 3},
    RunKind.rloo: {"num_generations": 2},
    RunKind.grpo: {"num_generations": 2, "max_completion_length": 6},
}


def group_run(
    sessions: sessionmaker[Session],
    settings: Settings,
    tiny: Path,
    kind: RunKind,
    hyperparameters: dict[str, Any],
    reward_model: Path | None = None,
) -> int:
    """A run of `kind` on the tiny model and a synthetic snapshot of its shape."""
    settings.ensure_data_dir()
    shape, snapshot_kind = SHAPES[kind]
    rows = {"sft": sft_rows, "preference": preference_rows, "prompts": prompt_rows}[shape](64)
    with sessions() as db:
        project: Project = make_project(db)
        model_folder = settings.data_dir / "models" / "tiny"
        if not model_folder.is_dir():
            shutil.copytree(tiny, model_folder)
        base = Model(name="tiny", role=ModelRole.policy, path="models/tiny", project_id=project.id)
        scorer = None
        if reward_model is not None:
            shutil.copytree(reward_model, settings.data_dir / "models/reward")
            scorer = Model(
                name="reward", role=ModelRole.reward, path="models/reward", project_id=project.id
            )
            db.add(scorer)
        snapshot = Snapshot(
            project_id=project.id,
            name=f"{shape} rows",
            kind=snapshot_kind,
            filters={},
            content_hash="0" * 64,
            row_counts={},
            path="",
        )
        db.add_all([base, snapshot])
        db.flush()
        snapshot.path = f"snapshots/{snapshot.id}"
        write_snapshot_folder(settings.data_dir / snapshot.path, shape, rows)
        run = Run(
            project_id=project.id,
            kind=kind,
            base_model_id=base.id,
            snapshot_id=snapshot.id,
            reward_model_id=scorer.id if scorer is not None else None,
            hyperparameters={"processes": 2, **hyperparameters},
            max_attempts=3,
        )
        db.add(run)
        db.commit()
        return run.id


def execute(run_id: int, sessions: sessionmaker[Session], settings: Settings) -> str:
    return execute_run(run_id, WORKER, settings=settings, sessions=sessions, device="cpu")


def run_state(sessions: sessionmaker[Session], run_id: int) -> Run:
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        db.expunge(run)
        return run


def logged_steps(sessions: sessionmaker[Session], run_id: int, name: str = "loss") -> list[int]:
    with sessions() as db:
        rows = db.scalars(
            select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.id)
        )
        return [row.step for row in rows if name in row.values]


def group_processes() -> list[psutil.Process]:
    """This test process's descendants that belong to a launched group."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "accelerate" in command or "worker.launched" in command:
            found.append(child)
    return found


def complete_checkpoints(settings: Settings, run_id: int) -> list[int]:
    folder = settings.data_dir / f"runs/{run_id}/checkpoints"
    return sorted(
        int(path.parent.name.removeprefix("checkpoint-"))
        for path in folder.glob("checkpoint-*/smiley-complete.json")
    )


@pytest.mark.parametrize(
    ("kind", "loss_name", "eval_names"),
    [
        (RunKind.sft, "loss", {"eval_loss", "perplexity", "train_loss"}),
        (RunKind.reward, "loss", {"accuracy", "eval_loss", "train_loss"}),
        (RunKind.dpo, "loss", {"eval_loss", "reward_accuracy", "reward_margin", "train_loss"}),
        (RunKind.ppo, "objective/scores", {"mean_reward", "start_mean_reward", "win_rate"}),
        (RunKind.rloo, "reward", {"mean_reward", "start_mean_reward", "win_rate"}),
        (RunKind.grpo, "reward", {"mean_reward", "start_mean_reward", "win_rate"}),
    ],
)
@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)  # the group, not the database
@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_a_two_process_run_trains_reports_each_step_once_and_saves_one_model(
    sessions: sessionmaker[Session],
    settings: Settings,
    tiny: Path,
    kind: RunKind,
    loss_name: str,
    eval_names: set[str],
    request: pytest.FixtureRequest,
) -> None:
    reward_model = request.getfixturevalue("tiny_reward") if kind in ONLINE else None
    extra = ONLINE_SETTINGS.get(kind, {})
    run_id = group_run(
        sessions,
        settings,
        tiny,
        kind,
        {"max_steps": 6, "batch_size": 4, **extra},
        reward_model,
    )
    assert execute(run_id, sessions, settings) == "succeeded"
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.succeeded, (run.error, run.traceback)
    assert eval_names <= set(run.metrics["eval"]), run.metrics
    # Rank 0 alone reports: each step once, not twice.
    assert logged_steps(sessions, run_id, loss_name) == [1, 2, 3, 4, 5, 6]
    used = run.artifacts["settings"]
    assert (used["processes"], used["distributed"], used["process_backend"]) == (2, "ddp", "gloo")
    assert used["reasons"]["distributed"] == (
        "on CPU: DDP over gloo (FSDP and DeepSpeed shard across GPUs)"
    )
    assert used["accelerate_config"]["num_processes"] == 2
    # What accelerate itself ran the trainer as, read back from rank 0.
    assert used["accelerate_distributed_type"] == "MULTI_CPU"
    # The job's own settings and reasons are still there beside the group's.
    assert used["batch_size"] == 4
    assert used["reasons"]["batch_size"] == "given in the run's hyperparameters"
    folder = settings.data_dir / f"runs/{run_id}"
    assert json.loads((folder / "launch/accelerate.json").read_text()) == used["accelerate_config"]
    # One model, written by rank 0 alone: no half-written or second copy beside it.
    expected = [name for name in MODEL_FILES if kind != RunKind.reward or "generation" not in name]
    assert sorted(path.name for path in (folder / "model").iterdir()) == expected
    with sessions() as db:
        model = db.get(Model, run.output_model_id)
        assert model is not None and model.path == f"runs/{run_id}/model"
    if kind == RunKind.ppo:
        # Its checkpoint, written by rank 0 alone: the policy, the value model beside it, and
        # the marker (the trainer had read `.config` off the DDP wrapper there).
        assert complete_checkpoints(settings, run_id) == [3, 6]
        checkpoint = folder / "checkpoints/checkpoint-3"
        assert (checkpoint / "model.safetensors").is_file()
        assert (checkpoint / "value_model/model.safetensors").is_file()
    assert group_processes() == []


@pytest.mark.parametrize("own_database", ["postgresql"], indirect=True)
@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_a_cancel_stops_every_rank_at_one_checkpoint_and_a_resume_finishes_the_run(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    run_id = group_run(
        sessions,
        settings,
        tiny,
        RunKind.sft,
        {"max_steps": 400, "batch_size": 2, "save_steps": 1000, "logging_steps": 1},
    )
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(execute(run_id, sessions, settings)))
    runner.start()
    deadline = time.monotonic() + 300
    while not logged_steps(sessions, run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged_steps(sessions, run_id), "no step was reported"
    # The launcher (torchrun's agent) and its two ranks, each `python -m worker.launched`.
    group = group_processes()
    ranks = [process for process in group if process.parent() in group]
    assert len(ranks) == 2, ranks
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        run.cancel_requested = True
        db.commit()
    runner.join(300)
    assert outcome == ["cancelled"]
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.cancelled
    checkpoints = complete_checkpoints(settings, run_id)
    # Both ranks stopped at the same step, with one checkpoint there (a rank that went on alone
    # would have hung the other, or saved a second one).
    assert len(checkpoints) == 1
    stopped_at = checkpoints[0]
    assert stopped_at < 400
    assert max(logged_steps(sessions, run_id)) == stopped_at
    assert not (settings.data_dir / f"runs/{run_id}/model").exists()
    assert group_processes() == []
    for rank in ranks:
        assert not rank.is_running()

    # Resumed (what resume_run does to the row, without a broker): the group takes up from
    # the checkpoint.
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        run.status, run.cancel_requested, run.finished_at = RunStatus.queued, False, None
        run.hyperparameters = {**run.hyperparameters, "max_steps": stopped_at + 3}
        db.commit()
    assert execute(run_id, sessions, settings) == "succeeded"
    steps = logged_steps(sessions, run_id)
    assert steps == list(range(1, stopped_at + 4))
    assert run_state(sessions, run_id).attempts == 2
    assert group_processes() == []


@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)  # the group, not the database
@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_a_rank_that_fails_fails_the_run_with_its_error_and_leaves_nothing_running(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    run_id = group_run(sessions, settings, tiny, RunKind.sft, {"max_steps": 2})
    snapshot_dir = settings.data_dir / "snapshots"
    # The snapshot's train split gone from under the job: every rank fails to load it.
    for split in snapshot_dir.glob("*/train.*"):
        split.unlink()
    for folder in snapshot_dir.glob("*/datasets"):
        shutil.rmtree(folder)
    assert execute(run_id, sessions, settings) == "failed"
    run = run_state(sessions, run_id)
    assert run.status == RunStatus.failed
    assert run.error is not None and run.error.startswith("GroupFailed: rank "), run.error
    assert run.traceback is not None and "worker/jobs/sft.py" in run.traceback
    assert group_processes() == []


@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_a_runner_that_fails_while_the_group_trains_ends_the_group(
    tiny: Path, tmp_path: Path
) -> None:
    """Any way out of the runner but the group's own end (here its report raising, as a
    database error would) kills the group: nothing is left running."""
    from worker.launch import run_group

    demonstrations = write_snapshot_folder(tmp_path / "demos", "sft", sft_rows(64))
    lines: list[str] = []

    def report(step: int, values: dict[str, float], progress: float) -> None:
        raise RuntimeError(f"the database went away at step {step}")

    ctx = replace(
        make_context(
            tmp_path / "run",
            "sft",
            {"processes": 2, "max_steps": 400, "batch_size": 2},
            tiny,
            demonstrations,
            Recorder(),
        ),
        report=report,
        log=lines.append,
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^the database went away at step 1$"):
        run_group(ctx)
    # SIGTERM to the group's session ends it well within the grace period.
    assert time.monotonic() - started < 120
    assert group_processes() == []
    assert not (tmp_path / "run/model").exists()
    # The group's output reached the runner's log, each rank's lines marked with its rank.
    assert any(line.startswith("[rank 0] SFT on ") for line in lines), lines[-20:]
    assert any(line.startswith("[rank 1] SFT on ") for line in lines), lines[-20:]
