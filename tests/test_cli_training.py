"""`smiley train`, `smiley runs`, `smiley models` and `smiley demo` against a fresh SQLite
database in a temporary data folder (the worker side is tested in tests/worker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app import db as app_db
from app.cli import cli
from app.db import get_engine, session_factory
from app.models import Model, ModelRole, Project, Role, Run, RunStatus, SnapshotKind
from app.schemas.users import UserCreate
from app.services import runs, users
from app.settings import get_settings
from tests.conftest import MigratedDatabases
from tests.factories import make_project
from tests.training_factories import make_model, make_snapshot, model_folder, queued_messages

runner = CliRunner()
WORKER = "gpu@host"


@pytest.fixture(autouse=True)
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_databases: MigratedDatabases
) -> Iterator[Path]:
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    get_settings().ensure_data_dir()
    migrated_databases.sqlite(get_settings().data_dir / "smiley.sqlite3")
    with session_factory(get_engine())() as db:
        users.create_user(db, UserCreate(username="ada", role=Role.admin, password="x" * 12))
        users.create_user(db, UserCreate(username="lena", role=Role.labeler, password="x" * 12))
        project = make_project(db)
        make_model(db, get_settings(), "base", project=project)
        make_snapshot(db, get_settings(), project, SnapshotKind.sft)
        make_snapshot(db, get_settings(), project, SnapshotKind.preference)
        db.commit()
    yield tmp_path / "data"
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def run_count() -> int:
    with session_factory(get_engine())() as db:
        return db.scalar(select(func.count()).select_from(Run)) or 0


def test_train_queues_a_run_with_the_settings_given() -> None:
    code, output = run(
        "train", "sft", "--project", "1", "--base", "base", "--snapshot", "1",
        "--set", "learning_rate=0.0003", "--set", "packing=true", "--set", "processes=2",
    )  # fmt: skip
    assert (code, output) == (
        0,
        "run 1 queued (sft); follow it with `smiley runs follow 1`\n",
    )
    with session_factory(get_engine())() as db:
        queued = db.get(Run, 1)
        assert queued is not None
        assert queued.hyperparameters["learning_rate"] == 0.0003
        assert queued.hyperparameters["packing"] is True
        assert (queued.hyperparameters["processes"], queued.hyperparameters["distributed"]) == (
            2,
            None,
        )
    assert queued_messages(get_settings()) == 1


def test_train_grpo_takes_python_reward_functions_by_name() -> None:
    with session_factory(get_engine())() as db:
        project = db.get(Project, 1)
        make_model(db, get_settings(), "rm", ModelRole.reward, project=project)
        prompts = make_snapshot(db, get_settings(), project, SnapshotKind.prompts)
        db.commit()
        prompts_id = prompts.id
    launch = ["train", "grpo", "--project", "1", "--base", "base", "--snapshot", str(prompts_id),
              "--reward-model", "rm"]  # fmt: skip

    code, output = run(*launch, "--set", 'reward_functions=["length_penalty", "brevity"]')
    assert (code, output) == (
        1,
        "error: hyperparameters.reward_functions: unknown reward function 'brevity'; choose "
        "from length_penalty, think_format\n",
    )
    assert run_count() == 0

    code, output = run(
        *launch, "--set", 'reward_functions=["think_format"]', "--set", "reward_weights=[1, 0.5]"
    )
    assert (code, output) == (0, "run 1 queued (grpo); follow it with `smiley runs follow 1`\n")
    with session_factory(get_engine())() as db:
        queued = db.get(Run, 1)
        assert queued is not None
        assert queued.hyperparameters["reward_functions"] == ["think_format"]
        assert queued.hyperparameters["reward_weights"] == [1.0, 0.5]
    assert queued_messages(get_settings()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--base", "/no/such/folder", "--snapshot", "1"],
            "error: the model path must be inside one of the model folders (DATA/models, "
            "DATA/runs); SMILEY_MODEL_ROOTS sets them\n",
        ),
        (
            ["--base", "base", "--snapshot", "2"],
            "error: snapshot 2 is a preference snapshot; a sft run needs a sft snapshot\n",
        ),
        (
            ["--base", "base", "--snapshot", "1", "--set", "learning_rate=-1"],
            "error: hyperparameters.learning_rate: Input should be greater than 0\n",
        ),
        (
            ["--base", "base", "--snapshot", "1", "--set", "batch_size=9"],
            "error: hyperparameters.batch_size: a batch of 9 is larger than snapshot 1's 8 "
            "training rows\n",
        ),
        (
            ["--base", "base", "--snapshot", "1", "--set", "oops"],
            "error: --set takes KEY=VALUE, got 'oops'\n",
        ),
        (
            ["--base", "base", "--snapshot", "1", "--as", "lena"],
            "error: lena is a labeler; this needs a researcher or admin\n",
        ),
    ],
)
def test_train_refuses_bad_configs_and_queues_nothing(args: list[str], message: str) -> None:
    code, output = run("train", "sft", "--project", "1", *args)
    assert (code, output) == (1, message.replace("DATA", str(get_settings().data_dir)))
    assert run_count() == 0
    assert queued_messages(get_settings()) == 0


def test_follow_shows_progress_until_the_run_ends_and_its_outcome() -> None:
    run("train", "sft", "--project", "1", "--base", "base", "--snapshot", "1")
    sessions = session_factory(get_engine())

    def worker() -> None:
        with sessions() as db:
            runs.claim_run(db, 1, WORKER)
            for step in (1, 2):
                time.sleep(0.3)
                runs.record_metrics(db, 1, WORKER, step, {"loss": 3.0 / step}, step / 2)
            runs.complete_run(
                db,
                get_settings(),
                1,
                WORKER,
                metrics={"eval_loss": 1.25},
                model_dir=get_settings().data_dir / "runs/1/model",
                role=ModelRole.policy,
                settings_used={"bf16": False},
                stopped=False,
            )

    thread = threading.Thread(target=worker)
    thread.start()
    code, output = run("runs", "follow", "1")
    thread.join()
    assert code == 0
    assert output.endswith(
        "run 1: sft succeeded (100%)\n"
        "  worker: gpu@host, attempt 1 of 3\n"
        "  train: loss 1.5, step 2\n"
        "  eval: eval_loss 1.25\n"
        "  model: 2 (runs/1/model)\n"
        '  settings chosen: {"bf16": false}\n'
    ), output


def test_runs_cancel_resume_list_and_a_failed_follow_exits_1() -> None:
    run("train", "sft", "--project", "1", "--base", "base", "--snapshot", "1")
    assert run("runs", "cancel", "1") == (0, "run 1: cancelled\n")
    assert run("runs", "cancel", "1") == (1, "error: run 1 already cancelled\n")
    assert run("runs", "resume", "1") == (0, "run 1 queued again\n")
    with session_factory(get_engine())() as db:
        runs.claim_run(db, 1, WORKER)
        runs.fail_run(db, 1, WORKER, error="RuntimeError: out of memory", traceback=None)
    code, output = run("runs", "follow", "1")
    assert code == 1
    assert output.endswith(
        "run 1: sft failed (0%)\n  worker: gpu@host, attempt 1 of 3\n"
        "  error: RuntimeError: out of memory\n"
    )
    assert run("runs", "list", "--project", "1") == (
        0,
        "    1  sft     failed       0%  model -\n",
    )
    assert run("runs", "show", "7") == (1, "error: no run with id 7\n")


def test_models_register_and_list_as_a_tree(data_dir: Path) -> None:
    folder = data_dir / "models" / "base"
    code, output = run("models", "register", "copy", str(folder), "--role", "reward")
    assert (code, output) == (0, "model 2: copy (reward)\n")
    code, output = run("models", "register", "nothing", str(data_dir / "models" / "nothing"))
    assert (code, output) == (1, f"error: no model folder at {data_dir / 'models' / 'nothing'}\n")
    code, output = run("models", "list")
    assert code == 0
    assert output == (f"   1  base  policy  models/base\n   2  copy  reward  {folder}\n")


def test_models_register_takes_folders_only_inside_the_model_folders(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    model_folder(elsewhere, "outside")
    refused = (
        1,
        f"error: the model path must be inside one of the model folders ({data_dir / 'models'}, "
        f"{data_dir / 'runs'}); SMILEY_MODEL_ROOTS sets them\n",
    )
    assert run("models", "register", "outside", str(elsewhere / "outside")) == refused
    assert run("models", "register", "none", str(elsewhere / "none")) == refused
    # The admin widens the rule with the setting, for the CLI as for everyone else.
    monkeypatch.setenv("SMILEY_MODEL_ROOTS", str(elsewhere))
    get_settings.cache_clear()
    assert run("models", "register", "outside", str(elsewhere / "outside")) == (
        0,
        "model 2: outside (policy)\n",
    )


@pytest.mark.slow
def test_demo_builds_and_registers_a_tiny_model(data_dir: Path) -> None:
    code, output = run("demo")
    assert code == 0, output
    folder = data_dir / "models" / "tiny-demo"
    assert output == f"model 2: tiny-demo at {folder}\n"
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()
    with session_factory(get_engine())() as db:
        model = db.scalar(select(Model).where(Model.name == "tiny-demo"))
        assert model is not None
        assert (model.role, model.path) == (ModelRole.policy, "models/tiny-demo")
    assert run("demo") == (1, "error: a model named 'tiny-demo' already exists\n")


def test_follow_of_a_finished_run_returns_at_once() -> None:
    run("train", "sft", "--project", "1", "--base", "base", "--snapshot", "1")
    run("runs", "cancel", "1")
    code, output = run("runs", "follow", "1")
    assert code == 1
    assert output.endswith("run 1: sft cancelled (0%)\n")
    with session_factory(get_engine())() as db:
        assert db.get(Run, 1).status == RunStatus.cancelled
