"""`smiley critique`: principles added and edited as versions, a critique run queued with only
the options given, refusals that queue nothing, and a queue's suggestion mode, against a fresh
SQLite database in a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import db as app_db
from app.cli import cli
from app.db import get_engine, session_factory
from app.models import Role, Run, RunKind, SuggestionMode
from app.models.queues import Queue
from app.schemas.users import UserCreate
from app.services import users
from app.settings import get_settings
from tests.conftest import MigratedDatabases
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.training_factories import make_model, queued_messages

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_databases: MigratedDatabases
) -> Iterator[Path]:
    """Project 1 with model 1 (critic), comparison queue 1 (two tasks of two responses)."""
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    migrated_databases.sqlite(settings.data_dir / "smiley.sqlite3")
    with session_factory(get_engine())() as db:
        users.create_user(db, UserCreate(username="ada", role=Role.admin, password="x" * 12))
        project = make_project(db)
        make_model(db, settings, "critic", project=project)
        queue = make_queue(db, project)
        make_comparison_tasks(db, queue, project, 2, responses_each=2)
    yield tmp_path / "data"
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_principles_and_a_critique_run_from_the_cli() -> None:
    add = ["critique", "add", "--project", "1", "--name", "kind"]
    assert run(*add, "--critique", "Unkind?", "--revision", "Be kind.") == (
        0, "principle 1 added (kind, version 1)\n",
    )  # fmt: skip
    edit = ["critique", "edit", "1", "--name", "kind", "--critique", "Unkind at all?"]
    assert run(*edit, "--revision", "Be kind.") == (0, "principle 2 saved (kind, version 2)\n")
    assert run("critique", "principles", "--project", "1", "--history") == (
        0, "2\tkind\tversion 2\t0 revisions\n1\tkind\tversion 1\t0 revisions\n",
    )  # fmt: skip
    code, output = run("critique", "run", "--project", "1", "--model", "critic", "--queue", "1",
                       "--principle", "1")  # fmt: skip
    assert (code, output) == (1, "error: principle 1 (kind) is retired: use its current version\n")
    assert queued_messages(get_settings()) == 0

    code, output = run("critique", "run", "--project", "1", "--model", "critic", "--queue", "1",
                       "--max-new-tokens", "16")  # fmt: skip
    assert (code, output) == (
        0, "run 1 queued (critique); follow it with `smiley runs follow 1`\n",
    )  # fmt: skip
    with session_factory(get_engine())() as db:
        stored = db.get(Run, 1)
        assert stored is not None and stored.kind == RunKind.critique
        assert stored.hyperparameters == {
            "queue_id": 1, "response_ids": None, "principle_ids": [2], "principle_choice": "each",
            "limit": None, "max_new_tokens": 16, "temperature": 1.0, "top_p": 1.0, "seed": 0,
        }  # fmt: skip
    assert queued_messages(get_settings()) == 1


def test_the_suggestion_mode_from_the_cli() -> None:
    assert run("critique", "suggestions", "1", "--mode", "before") == (
        0,
        "queue 1: the judge's ranking is shown before\n"
        "after\t0 labels\t0/0 pairs agreed\t—\nbefore\t0 labels\t0/0 pairs agreed\t—\n",
    )
    with session_factory(get_engine())() as db:
        queue = db.get(Queue, 1)
        assert queue is not None and queue.suggestion_mode == SuggestionMode.before
    assert run("critique", "suggestions", "7")[0] == 1
