"""Runs with `processes` above 1: the job as a 2-process `accelerate launch` group on CPU (gloo)
(worker/runner.py, worker/launch.py, worker/launched.py) with the real job modules and the tiny
model. End to end, every job kind is launched with `smiley train KIND … --set processes=2`,
taken by a real `smiley worker`, cancelled with `smiley runs cancel` and resumed with `smiley
runs resume`; what the group must do as one: train to the single-process job tests' thresholds,
report each step once (rank 0), save the model once, stop every rank on a cancel with one
checkpoint, resume from it without starting over, and leave no process behind. A SIGKILLed
worker taking its group with it is in test_training_worker.py."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.models import (
    Model,
    Project,
    Role,
    Run,
    RunKind,
    RunMetric,
    RunStatus,
    Snapshot,
    SnapshotKind,
)
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project
from tests.worker.job_support import Recorder, make_context
from tests.worker.training_worker import (
    complete_checkpoints,
    group_members,
    run_state,
    start_worker,
    tiny_base_model,
    wait_for,
)
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


def group_run(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path, hyperparameters: dict[str, Any]
) -> int:
    """A 2-process SFT run on the tiny model, queued as the runner finds it (no broker)."""
    settings.ensure_data_dir()
    with sessions() as db:
        project: Project = make_project(db)
        db.commit()
        base = tiny_base_model(db, settings, project, tiny)
        snapshot_id = snapshot_of(db, settings, project, "sft", sft_rows(64))
        run = Run(
            project_id=project.id,
            kind=RunKind.sft,
            base_model_id=base.id,
            snapshot_id=snapshot_id,
            hyperparameters={"processes": 2, **hyperparameters},
            max_attempts=3,
        )
        db.add(run)
        db.commit()
        return run.id


def execute(run_id: int, sessions: sessionmaker[Session], settings: Settings) -> str:
    return execute_run(run_id, WORKER, settings=settings, sessions=sessions, device="cpu")


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


# --- end to end: `smiley train KIND --set processes=2` through a real worker -------------------

# Each kind's run: its snapshot, its settings (per rank: two ranks make the batch twice the
# size, so the offline kinds need about half the single-process job tests' steps), the metric
# it logs each step, and the learning threshold of its single-process job test.
Threshold = Callable[[dict[str, float], float], bool]
E2E_ROWS = {
    # Demonstrations half positive, half negative: the policy the online kinds start from
    # says both kinds of thing (tests/worker/conftest.py's rl_inputs).
    "sft": sft_rows(400, positive_share=0.5),
    "preference": preference_rows(400),
    "prompts": prompt_rows(200),
}
E2E: dict[RunKind, tuple[str, dict[str, Any], str, Threshold]] = {
    RunKind.sft: (
        "sft",
        {"max_steps": 150, "batch_size": 8, "learning_rate": 1e-3},
        "loss",
        lambda metrics, first_loss: metrics["eval_loss"] < 0.6 * first_loss,
    ),
    RunKind.reward: (
        "preference",
        {"max_steps": 60, "batch_size": 8},
        "loss",
        lambda metrics, _: metrics["accuracy"] >= 0.9 and metrics["margin"] > 1.0,
    ),
    RunKind.dpo: (
        "preference",
        {"max_steps": 20, "batch_size": 8},
        "loss",
        lambda metrics, _: (
            metrics["reward_accuracy"] >= 0.9
            and metrics["reward_margin"] > 0.3
            and metrics["eval_loss"] < 0.6
        ),
    ),
    RunKind.rloo: (
        "prompts",
        {"max_steps": 30, "batch_size": 8, "max_completion_length": 12},
        "reward",
        lambda metrics, _: (
            metrics["mean_reward"] > metrics["start_mean_reward"] + 0.3
            and metrics["win_rate"] > 0.6
        ),
    ),
    RunKind.grpo: (
        "prompts",
        {"max_steps": 30, "batch_size": 8, "max_completion_length": 12},
        "reward",
        lambda metrics, _: (
            metrics["mean_reward"] > metrics["start_mean_reward"] + 0.3
            and metrics["win_rate"] > 0.6
        ),
    ),
    RunKind.ppo: (
        "prompts",
        # Checkpoints every 3 steps too: the step its trainer once failed to save at under DDP.
        {"max_steps": 14, "batch_size": 8, "max_completion_length": 12, "save_steps": 3},
        "objective/scores",
        lambda metrics, _: (
            metrics["mean_reward"] > metrics["start_mean_reward"] + 0.3
            and metrics["win_rate"] > 0.6
        ),
    ),
}


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The `smiley` commands, run here (typer's CliRunner), on the worker's database and broker."""
    from app import db as app_db
    from app.settings import get_settings

    for name in ("SMILEY_BROKER_URL", "SMILEY_MODEL_ROOTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SMILEY_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("SMILEY_SECRET_KEY", settings.resolved_secret_key)
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    settings.ensure_data_dir()
    yield get_settings()
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def smiley(*args: str) -> str:
    from typer.testing import CliRunner

    from app.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def snapshot_of(
    db: Session, settings: Settings, project: Project, shape: str, rows: list[dict[str, Any]]
) -> int:
    """A snapshot of `rows` (a shape of worker/training/synthetic.py), with its row counts."""
    snapshot = Snapshot(
        project_id=project.id,
        name=f"{shape} rows",
        kind=SnapshotKind(shape),
        filters={},
        content_hash="0" * 64,
        row_counts={},
        path="",
    )
    db.add(snapshot)
    db.flush()
    snapshot.path = f"snapshots/{snapshot.id}"
    folder = write_snapshot_folder(settings.data_dir / snapshot.path, shape, rows)
    snapshot.row_counts = {
        split: len((folder / f"{split}.jsonl").read_text().splitlines())
        for split in ("train", "test")
    }
    return snapshot.id


@dataclass
class GroupRun:
    """One kind's run through the worker, and what the test saw of it on the way."""

    kind: RunKind
    run_id: int
    stage: str = "training"  # then "cancelling", "resumed", "done"
    members: list[psutil.Process] = field(default_factory=list)
    stopped_at: int | None = None


# Cancelled at their first step and resumed as a group: one kind of each way a job stops and
# resumes (HF Trainer's offline loop, the online kinds' shared one, our PPO's own). The others
# train straight through as groups; their single-process cancel and resume are in
# test_job_{reward,dpo,grpo}.py. Each launch starts three processes that import torch,
# transformers and TRL (6-7 s of CPU each): three cancels fewer took the test from 147 s to
# 127 s alone.
RESUMED = {RunKind.sft, RunKind.rloo, RunKind.ppo}


# Nine group launches: ~2.5 minutes on 2 cores.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)
@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_every_kind_trains_as_a_two_process_group_on_a_worker_and_learns_three_cancel_and_resume(
    sessions: sessionmaker[Session], cli_settings: Settings, tiny: Path
) -> None:
    settings = cli_settings
    with sessions() as db:
        make_user(db, "ada", Role.admin)
        project = make_project(db)
        db.commit()
        tiny_base_model(db, settings, project, tiny)
        snapshots = {
            shape: snapshot_of(db, settings, project, shape, rows)
            for shape, rows in E2E_ROWS.items()
        }
        db.commit()
        project_id = project.id

    def launch(kind: RunKind, base: str, reward_model: str | None = None) -> GroupRun:
        shape, hyperparameters, _, _ = E2E[kind]
        args = ["train", kind.value, "--project", str(project_id), "--base", base]
        args += ["--snapshot", str(snapshots[shape])]
        if reward_model is not None:
            args += ["--reward-model", reward_model]
        for key, value in {**hyperparameters, "processes": 2}.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        queued = re.fullmatch(r"run (\d+) queued \(\w+\); .*\n", smiley(*args))
        assert queued is not None
        return GroupRun(kind, int(queued.group(1)))

    # The offline kinds first; the online ones start from the SFT run's policy with the reward
    # run's model, as a researcher would chain them.
    group = [launch(RunKind.sft, "tiny"), launch(RunKind.reward, "tiny")]
    group.append(launch(RunKind.dpo, "tiny"))
    worker = start_worker(
        settings, "e2e-group@%h", concurrency=2, SMILEY_RUN_HEARTBEAT_SECONDS="0.5"
    )
    try:

        def advance() -> bool:
            """Moves each run one stage on when it is ready; true once every run is done."""
            for run in group:
                state = run_state(sessions, run.run_id)
                if state.status == RunStatus.failed:
                    raise AssertionError((run.kind, state.error, state.traceback))
                folder = settings.data_dir / f"runs/{run.run_id}/launch"
                if run.stage == "training" and (folder / "accelerate.json").is_file():
                    if len(run.members) < 3:
                        run.members = group_members(folder)
                    if len(run.members) == 3 and run.kind in RESUMED:
                        # Cancelled as soon as the launcher and its two ranks are up, before
                        # they have trained: every rank stops after its first step, whatever
                        # the speed.
                        smiley("runs", "cancel", str(run.run_id))
                        run.stage = "cancelling"
                    elif run.kind not in RESUMED and state.status == RunStatus.succeeded:
                        run.stage = "done"
                elif run.stage == "cancelling" and state.status == RunStatus.cancelled:
                    checkpoints = complete_checkpoints(settings, run.run_id)
                    # Both ranks stopped at one step, with one checkpoint there (a rank that
                    # went on alone would have hung the other, or saved a second one).
                    assert len(checkpoints) == 1, (run.kind, checkpoints)
                    run.stopped_at = checkpoints[0]
                    if run.kind == RunKind.ppo:
                        # The value model is saved beside the policy, by rank 0 alone.
                        stop = folder.parent / f"checkpoints/checkpoint-{run.stopped_at}"
                        assert (stop / "value_model/model.safetensors").is_file()
                    steps = logged_steps(sessions, run.run_id, E2E[run.kind][2])
                    assert steps == list(range(1, run.stopped_at + 1)), (run.kind, steps)
                    assert not (folder.parent / "model").exists()
                    assert group_members(folder) == []
                    assert smiley("runs", "resume", str(run.run_id)) == (
                        f"run {run.run_id} queued again\n"
                    )
                    run.stage = "resumed"
                elif run.stage == "resumed" and state.status == RunStatus.succeeded:
                    run.stage = "done"
            finished = {run.kind for run in group if run.stage == "done"}
            if {RunKind.sft, RunKind.reward} <= finished and len(group) == 3:
                sft_model, reward_model = (
                    f"run-{run.run_id}-{run.kind.value}" for run in group[:2]
                )
                for kind in (RunKind.rloo, RunKind.grpo, RunKind.ppo):
                    group.append(launch(kind, sft_model, reward_model))
            return len(finished) == len(E2E)

        wait_for(advance, 840, "every kind's run to finish", worker)
    finally:
        worker.stop()

    for run in group:
        state = run_state(sessions, run.run_id)
        _, hyperparameters, metric, learned = E2E[run.kind]
        resumed = run.kind in RESUMED
        assert (state.status, state.attempts) == (RunStatus.succeeded, 1 + resumed), run.kind
        # The launcher and its two ranks were running, and none outlived the cancel or the end.
        assert len(run.members) == 3, (run.kind, run.members)
        assert not any(member.is_running() for member in run.members)
        # Rank 0 alone reported, each step once; a resumed group took up after its checkpoint
        # instead of starting over.
        steps = logged_steps(sessions, run.run_id, metric)
        assert steps == list(range(1, hyperparameters["max_steps"] + 1)), (run.kind, steps)
        if resumed:
            assert run.stopped_at is not None and run.stopped_at < hyperparameters["max_steps"]
        with sessions() as db:
            first_loss = next(
                row.values[metric]
                for row in db.scalars(
                    select(RunMetric).where(RunMetric.run_id == run.run_id).order_by(RunMetric.id)
                )
                if metric in row.values
            )
        assert learned(state.metrics["eval"], first_loss), (run.kind, state.metrics["eval"])
        used = state.artifacts["settings"]
        assert (used["processes"], used["distributed"], used["process_backend"]) == (
            2,
            "ddp",
            "gloo",
        )
        assert used["reasons"]["distributed"] == (
            "on CPU: DDP over gloo (FSDP and DeepSpeed shard across GPUs)"
        )
        assert used["accelerate_config"]["num_processes"] == 2
        # What accelerate itself ran the trainer as, read back from rank 0.
        assert used["accelerate_distributed_type"] == "MULTI_CPU"
        # The job's own settings and reasons are still there beside the group's.
        assert used["batch_size"] == 8
        assert used["reasons"]["batch_size"] == "given in the run's hyperparameters"
        folder = settings.data_dir / f"runs/{run.run_id}"
        assert (
            json.loads((folder / "launch/accelerate.json").read_text())
            == (used["accelerate_config"])
        )
        # One model, written by rank 0 alone: no half-written or second copy beside it.
        expected = [
            name for name in MODEL_FILES if run.kind != RunKind.reward or "generation" not in name
        ]
        assert sorted(path.name for path in (folder / "model").iterdir()) == expected
        with sessions() as db:
            model = db.get(Model, state.output_model_id)
            assert model is not None
            assert (model.name, model.path) == (
                f"run-{run.run_id}-{run.kind.value}",
                f"runs/{run.run_id}/model",
            )
        if run.kind == RunKind.ppo:
            # Saved every 3 steps after the resume (the two newest kept), each by rank 0
            # alone: the policy and the value model beside it (the trainer had read `.config`
            # off the DDP wrapper there).
            assert complete_checkpoints(settings, run.run_id) == [12, 14]
            for step in (12, 14):
                checkpoint = folder / f"checkpoints/checkpoint-{step}"
                assert (checkpoint / "model.safetensors").is_file()
                assert (checkpoint / "value_model/model.safetensors").is_file()
        assert group_members(folder / "launch") == []
    assert group_processes() == []


@pytest.mark.parametrize("own_database", ["sqlite"], indirect=True)  # the group, not the database
@pytest.mark.slow
@pytest.mark.xdist_group("training-e2e")
def test_a_rank_that_fails_fails_the_run_with_its_error_and_leaves_nothing_running(
    sessions: sessionmaker[Session], settings: Settings, tiny: Path
) -> None:
    run_id = group_run(sessions, settings, tiny, {"max_steps": 2})
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
    database error would) kills the group: nothing is left running, and what the group
    printed before then still reaches the runner's log."""
    from worker.launch import LOG_FILE, run_group

    demonstrations = write_snapshot_folder(tmp_path / "demos", "sft", sft_rows(64))
    lines: list[str] = []
    late = "[rank 1] printed after the runner's last look at the log"

    def report(step: int, values: dict[str, float], progress: float) -> None:
        # A line the runner has not forwarded yet when it fails (as a rank's first line was
        # on CI, written while rank 0 finished its first step): once, before the group's end.
        with (tmp_path / "run/launch" / LOG_FILE).open("a") as log:
            log.write(late + "\n")
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
    assert lines.count(late) == 1, lines[-20:]
