"""`smiley generate`, `smiley score` and `smiley train`'s refusal of those kinds, against a
fresh SQLite database in a temporary data folder (the worker side is tested in tests/worker)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app import db as app_db
from app.cli import cli
from app.db import get_engine, session_factory
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    ModelRole,
    QueueKind,
    Role,
    Run,
    RunKind,
    RunStatus,
    SnapshotKind,
    Task,
)
from app.schemas.users import UserCreate
from app.services import runs, users
from app.settings import get_settings
from tests.conftest import MigratedDatabases
from tests.factories import make_project, make_prompt, make_queue, make_responses
from tests.training_factories import make_model, make_snapshot, queued_messages

runner = CliRunner()
# Ids the fixture makes, in order: models 1 base (policy), 2 judge (reward), 3 older (policy);
# prompts 1-4; queue 1 (comparison, the target), queue 2 (demonstration, tasks on prompts 4
# and 2); snapshot 1 (prompts: train 1-3, test 4); responses 1-3 answer prompt 1.
TARGET, SOURCE = "1", "2"
DEFAULTS: dict[str, Any] = {
    "samples_per_prompt": 4,
    "repeats": 1,
    "max_new_tokens": 32,
    "temperature": 1.0,
    "top_p": 1.0,
    "seed": 0,
    "best_of_n": False,
    "prompt_queue_id": None,
    "prompt_ids": None,
    "split": "all",
    "prompt_limit": None,
    "selection": "random",
    "target_queue_id": None,
    "include_demonstration": False,
    "compare_model_id": None,
    "use_vllm": None,
    "compare_best_of": 1,
}


@pytest.fixture(autouse=True)
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_databases: MigratedDatabases
) -> Iterator[Path]:
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    migrated_databases.sqlite(get_settings().data_dir / "smiley.sqlite3")
    with session_factory(get_engine())() as db:
        users.create_user(db, UserCreate(username="ada", role=Role.admin, password="x" * 12))
        users.create_user(db, UserCreate(username="lena", role=Role.labeler, password="x" * 12))
        project = make_project(db)
        make_model(db, settings, "base", project=project)
        make_model(db, settings, "judge", ModelRole.reward, project=project)
        make_model(db, settings, "older", project=project)
        prompts = [make_prompt(db, project, f"Describe place {index}.") for index in range(4)]
        make_queue(db, project)
        source = make_queue(db, project, QueueKind.demonstration, name="demos")
        db.add_all(Task(queue_id=source.id, prompt_id=prompts[i].id, overlap=1) for i in (3, 1))
        snapshot = make_snapshot(db, settings, project, SnapshotKind.prompts)
        folder = settings.data_dir / snapshot.path
        (folder / "train.jsonl").write_text(
            "".join(json.dumps({"prompt": [], "prompt_id": p.id}) + "\n" for p in prompts[:3])
        )
        (folder / "test.jsonl").write_text(json.dumps({"prompt": [], "prompt_id": 4}) + "\n")
        make_responses(db, prompts[0], 3)
        db.commit()
    yield tmp_path / "data"
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def stored_run(run_id: int) -> Run:
    with session_factory(get_engine())() as db:
        found = db.get(Run, run_id)
        assert found is not None
        return found


def input_rows(data_dir: Path, run_id: int, name: str) -> list[dict[str, Any]]:
    path = data_dir / "runs" / str(run_id) / "input" / name
    return [json.loads(line) for line in path.read_text().splitlines()]


def asked(prompt_id: int) -> dict[str, Any]:
    """A prompts.jsonl row for one of the fixture's prompts."""
    text = f"Describe place {prompt_id - 1}."
    return {"prompt_id": prompt_id, "messages": [{"role": "user", "content": text}]}


def nothing_queued(data_dir: Path) -> bool:
    with session_factory(get_engine())() as db:
        count = db.scalar(select(func.count()).select_from(Run))
    return count == 0 and queued_messages(get_settings()) == 0 and not (data_dir / "runs").exists()


# --- generate ---------------------------------------------------------------------------------


def test_generate_queues_a_run_with_exactly_the_settings_given(data_dir: Path) -> None:
    code, output = run(
        "generate", "--project", "1", "--model", "base", "--reward-model", "judge",
        "--queue", TARGET, "--prompt-id", "3", "--prompt-id", "1", "--prompt-id", "2",
        "--samples", "3", "--repeats", "2", "--best-of-n", "--prompt-limit", "2",
        "--selection", "random", "--compare-model", "older", "--include-demonstration",
        "--max-new-tokens", "64", "--temperature", "0.7", "--top-p", "0.9", "--seed", "5",
    )  # fmt: skip
    assert (code, output) == (
        0,
        "run 1 queued (generate); follow it with `smiley runs follow 1`\n",
    )
    queued = stored_run(1)
    assert (queued.kind, queued.status, queued.project_id) == (
        RunKind.generate,
        RunStatus.queued,
        1,
    )
    assert (queued.base_model_id, queued.reward_model_id, queued.snapshot_id) == (1, 2, None)
    assert queued.created_by_id == 1
    assert queued.hyperparameters == DEFAULTS | {
        "samples_per_prompt": 3,
        "repeats": 2,
        "max_new_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 5,
        "best_of_n": True,
        "prompt_ids": [3, 1, 2],
        "prompt_limit": 2,
        "target_queue_id": 1,
        "include_demonstration": True,
        "compare_model_id": 3,
    }
    chosen = random.Random(5).sample([3, 1, 2], 2)
    assert input_rows(data_dir, 1, "prompts.jsonl") == [asked(prompt_id) for prompt_id in chosen]
    assert queued_messages(get_settings()) == 1


def test_options_left_out_take_the_schema_defaults_and_a_model_can_be_named_by_id(
    data_dir: Path,
) -> None:
    code, _ = run("generate", "--project", "1", "--model", "1", "--prompts-from-queue", SOURCE)
    assert code == 0
    queued = stored_run(1)
    assert (queued.base_model_id, queued.reward_model_id) == (1, None)
    assert queued.hyperparameters == DEFAULTS | {"prompt_queue_id": 2}
    assert input_rows(data_dir, 1, "prompts.jsonl") == [asked(4), asked(2)]


def test_generate_answers_a_snapshot_split(data_dir: Path) -> None:
    code, _ = run("generate", "--project", "1", "--model", "base", "--snapshot", "1",
                  "--split", "test", "--as", "ada")  # fmt: skip
    assert code == 0
    queued = stored_run(1)
    assert queued.snapshot_id == 1
    assert queued.hyperparameters == DEFAULTS | {"split": "test"}
    assert input_rows(data_dir, 1, "prompts.jsonl") == [asked(4)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model", "nobody", "--prompt-id", "1"],
            "--model: no registered model 'nobody' (see `smiley models list`)",
        ),
        (["--model", "9", "--prompt-id", "1"], "no model with id 9"),
        (
            ["--model", "base", "--compare-model", "nobody", "--queue", TARGET, "--prompt-id", "1"],
            "--compare-model: no registered model 'nobody' (see `smiley models list`)",
        ),
        (
            ["--model", "base", "--queue", TARGET, "--samples", "1", "--prompt-id", "1"],
            "hyperparameters: a comparison task needs two answers to compare: "
            "samples_per_prompt must be at least 2 (or set compare_model_id)",
        ),
        (
            ["--model", "base", "--queue", TARGET, "--compare-model", "base", "--prompt-id", "1"],
            "compare_model_id names the model that is generating: compare two different models",
        ),
        (
            ["--model", "base", "--reward-model", "older", "--best-of-n", "--prompt-id", "1"],
            "model 3 is a policy model, not a reward model",
        ),
        (["--model", "judge", "--prompt-id", "1"], "model 2 is a reward model, not a policy model"),
        (["--model", "base", "--best-of-n", "--prompt-id", "1"], "best_of_n needs a reward model"),
        (
            ["--model", "base", "--queue", SOURCE, "--prompt-id", "1"],
            "queue 2 is a demonstration queue; samples go to a comparison queue",
        ),
        (
            ["--model", "base", "--snapshot", "1", "--prompt-id", "1"],
            "take the prompts from exactly one of: a snapshot (snapshot_id), a queue "
            "(hyperparameters.prompt_queue_id) or a list (hyperparameters.prompt_ids)",
        ),
        (
            ["--model", "base", "--prompt-id", "1", "--prompt-id", "7"],
            "1 prompt(s) are not prompts of project 1: 7",
        ),
        (
            ["--model", "base", "--prompt-id", "1", "--temperature", "0"],
            "hyperparameters.temperature: Input should be greater than 0",
        ),
        (
            ["--model", "base", "--prompt-id", "1", "--as", "lena"],
            "lena is a labeler; this needs a researcher or admin",
        ),
    ],
)
def test_generate_refuses_bad_inputs_with_the_reason_and_queues_nothing(
    data_dir: Path, args: list[str], message: str
) -> None:
    assert run("generate", "--project", "1", *args) == (1, f"error: {message}\n")
    assert nothing_queued(data_dir)


def test_generate_follow_shows_the_run_until_it_ends() -> None:
    sessions = session_factory(get_engine())

    def worker() -> None:
        # Waits for the command to queue the run (a session per look, so that no read
        # transaction holds SQLite's lock while the command writes), then fails it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sessions() as db:
                if db.get(Run, 1) is not None:
                    runs.claim_run(db, 1, "gpu@host")
                    runs.fail_run(
                        db, 1, "gpu@host", error="RuntimeError: out of memory", traceback=None
                    )
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=worker)
    thread.start()
    code, output = run("generate", "--project", "1", "--model", "base", "--prompt-id", "1",
                       "--follow")  # fmt: skip
    thread.join()
    assert code == 1, output
    assert output.startswith("run 1 queued (generate); follow it with `smiley runs follow 1`\n")
    assert output.endswith(
        "run 1: generate failed (0%)\n  worker: gpu@host, attempt 1 of 3\n"
        "  error: RuntimeError: out of memory\n"
    )


# --- score ------------------------------------------------------------------------------------


def test_score_queues_a_run_for_the_judged_responses(data_dir: Path) -> None:
    with session_factory(get_engine())() as db:
        comparison = Comparison(prompt_id=1, labeler_id=2, source=LabelSource.labeler)
        db.add(comparison)
        db.flush()
        db.add_all(
            ComparisonItem(comparison_id=comparison.id, response_id=rid, rank=rank, score=4)
            for rid, rank in ((1, 1), (3, 2))
        )
        db.commit()
    code, output = run("score", "--project", "1", "--reward-model", "judge")
    assert (code, output) == (0, "run 1 queued (score); follow it with `smiley runs follow 1`\n")
    queued = stored_run(1)
    assert (queued.kind, queued.base_model_id, queued.reward_model_id) == (RunKind.score, 2, 2)
    assert queued.hyperparameters == {"responses": "judged", "limit": None}
    prompt = [{"role": "user", "content": "Describe place 0."}]
    assert input_rows(data_dir, 1, "responses.jsonl") == [
        {"response_id": 3, "prompt": prompt, "content": "answer 2"},
        {"response_id": 1, "prompt": prompt, "content": "answer 0"},
    ]
    assert queued_messages(get_settings()) == 1


def test_score_all_with_a_limit_takes_the_newest_responses(data_dir: Path) -> None:
    code, _ = run("score", "--project", "1", "--reward-model", "2", "--all", "--limit", "2")
    assert code == 0
    assert stored_run(1).hyperparameters == {"responses": "all", "limit": 2}
    rows = input_rows(data_dir, 1, "responses.jsonl")
    assert [row["response_id"] for row in rows] == [3, 2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reward-model", "judge"], "project 1 has no judged responses to score"),
        (["--reward-model", "base", "--all"], "model 1 is a policy model, not a reward model"),
        (
            ["--reward-model", "nobody"],
            "--reward-model: no registered model 'nobody' (see `smiley models list`)",
        ),
        (
            ["--reward-model", "judge", "--all", "--limit", "0"],
            "hyperparameters.limit: Input should be greater than or equal to 1",
        ),
    ],
)
def test_score_refuses_bad_inputs_and_queues_nothing(
    data_dir: Path, args: list[str], message: str
) -> None:
    assert run("score", "--project", "1", *args) == (1, f"error: {message}\n")
    assert nothing_queued(data_dir)


# --- train ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generate", "score"])
def test_train_points_sampling_kinds_to_their_own_command(data_dir: Path, kind: str) -> None:
    code, output = run("train", kind, "--project", "1", "--base", "base", "--snapshot", "1")
    assert code == 2
    assert output.endswith(
        f"Error: Invalid value for 'KIND': {kind} runs are launched with `smiley {kind}`\n"
    )
    assert nothing_queued(data_dir)


def test_train_lists_only_the_training_kinds() -> None:
    code, output = run("train", "--help")
    assert code == 0
    assert "KIND <sft|reward|dpo|ppo|rloo|grpo>" in output
    code, output = run("train", "bogus", "--project", "1", "--base", "base", "--snapshot", "1")
    assert code == 2
    assert output.endswith("Error: Invalid value for 'KIND': 'bogus' is not sft, reward, dpo, "
                           "ppo, rloo or grpo\n")  # fmt: skip
