"""`smiley judge`, against a fresh SQLite database holding the hand-worked judge world of
tests/judge_world.py (the worker side is tested in tests/worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import db as app_db
from app.cli import cli
from app.db import get_engine, session_factory
from app.models import ModelRole, Role, Run, RunKind, Task
from app.schemas.users import UserCreate
from app.services import users
from app.services.agreement.reliability import CACHE
from app.settings import get_settings
from tests.conftest import MigratedDatabases
from tests.judge_world import build_judge_world
from tests.training_factories import make_model, queued_messages

runner = CliRunner()


@pytest.fixture
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_databases: MigratedDatabases
) -> Iterator[dict[str, int]]:
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    CACHE.clear()
    settings = get_settings()
    settings.ensure_data_dir()
    migrated_databases.sqlite(settings.data_dir / "smiley.sqlite3")
    with session_factory(get_engine())() as db:
        users.create_user(db, UserCreate(username="ada", role=Role.admin, password="x" * 12))
        world = build_judge_world(db, settings.data_dir)
        rm = make_model(db, settings, "rm", ModelRole.reward, project=world.project)
        db.commit()
        ids = {
            "project": world.project.id,
            "main": world.main.id,
            "rm": rm.id,
            **{f"t{n}": task.id for n, task in enumerate(world.tasks, start=1)},
        }
    yield ids
    CACHE.clear()
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: object) -> tuple[int, str]:
    result = runner.invoke(cli, [str(arg) for arg in args])
    return result.exit_code, result.output


def test_judge_run_queues_a_run_with_the_settings_given(data_dir: dict[str, int]) -> None:
    code, output = run(
        "judge", "run", "--project", data_dir["project"], "--model", "rm",
        "--queue", data_dir["main"], "--limit", 1,
    )  # fmt: skip
    assert code == 0, output
    with session_factory(get_engine())() as db:
        queued = db.get(Run, 2)  # the world's own judge run is 1
        assert queued is not None
        assert (queued.kind, queued.base_model_id) == (RunKind.judge, data_dir["rm"])
        assert queued.hyperparameters["queue_id"] == data_dir["main"]
        assert queued.hyperparameters["task_limit"] == 1
        assert queued.hyperparameters["mode"] == "reward"
    assert output == "run 2 queued (judge); follow it with `smiley runs follow 2`\n"
    assert queued_messages(get_settings()) == 1
    code, output = run("judge", "run", "--project", data_dir["project"], "--model", "nope",
                       "--queue", data_dir["main"])  # fmt: skip
    assert (code, output) == (
        1, "error: --model: no registered model 'nope' (see `smiley models list`)\n",
    )  # fmt: skip


def test_judge_agreement_prints_each_judge_beside_the_people(data_dir: dict[str, int]) -> None:
    code, output = run("judge", "agreement", "--project", data_dir["project"])
    assert code == 0, output
    assert output.splitlines() == [
        "judge-lm (template v1), generative, 3 tasks labelled",
        "  overall: 60.0% [23.1%, 88.2%] (3/5 pairs, 3 tasks)",
        "  brainstorming: 100.0% [20.7%, 100.0%] (1/1 pairs, 1 tasks)",
        "  chat: 50.0% [15.0%, 85.0%] (2/4 pairs, 2 tasks)",
        "  queue main: 50.0% [15.0%, 85.0%] (2/4 pairs, 2 tasks)",
        "  queue side: 100.0% [20.7%, 100.0%] (1/1 pairs, 1 tasks)",
        f"  disagrees on task {data_dir['t1']}: people put response 1 over 2; the judge the "
        "other way by 4 (score)",
        f"  disagrees on task {data_dir['t2']}: people put response 4 over 5; the judge the "
        "other way by 2 (score)",
    ]


def test_judge_send_back_and_templates(data_dir: dict[str, int], tmp_path: Path) -> None:
    project = data_dir["project"]
    code, output = run("judge", "send-back", "--project", project, data_dir["t1"])
    assert (code, output) == (0, f"1 tasks wait for one more human label: {data_dir['t1']}\n")
    with session_factory(get_engine())() as db:
        task = db.get(Task, data_dir["t1"])
        assert task is not None and task.overlap == 4
    body = tmp_path / "template.txt"
    body.write_text("Judge {responses} by {guideline}.")
    assert run("judge", "templates", "save", "--project", project, body, "--note", "terse") == (
        0, "saved judge template version 2\n",
    )  # fmt: skip
    assert run("judge", "templates", "list", "--project", project) == (
        0, "v2  terse\nv1  —\n",
    )  # fmt: skip
    assert run("judge", "templates", "show", "--project", project) == (
        0, "Judge {responses} by {guideline}.\n",
    )  # fmt: skip
    body.write_text("No answers shown.")
    assert run("judge", "templates", "save", "--project", project, body) == (
        1, "error: the template must show the answers: put {responses} where they go\n",
    )  # fmt: skip
