"""The `smiley` CLI against a fresh SQLite database in a temporary data folder."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import db as app_db
from app.cli import cli
from app.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("SMILEY_DATABASE_URL", "SMILEY_BROKER_URL", "SMILEY_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()
    app_db._engine_for.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


def test_help_lists_the_commands() -> None:
    code, output = run("--help")
    assert code == 0
    for command in ("up", "web", "worker", "db", "users", "tokens"):
        assert re.search(rf"^\s+{command}\s", output, re.MULTILINE), command


def test_db_upgrade_creates_the_database(fresh_settings: Path) -> None:
    assert run("db", "upgrade") == (0, "database at head\n")
    assert (fresh_settings / "smiley.sqlite3").exists()


def test_users_lifecycle() -> None:
    run("db", "upgrade")
    code, output = run("users", "create", "Ada", "--role", "admin", "--generate-password")
    assert code == 0
    assert output.startswith("created ada (admin)\npassword (shown once; to be changed at first")
    assert re.search(r": [a-z2-9]{5}(-[a-z2-9]{5}){3}\n$", output)

    code, output = run("users", "create", "bob", "--generate-password")
    assert code == 0

    code, output = run("users", "create", "ADA", "--generate-password")
    assert (code, output) == (1, "error: the username 'ada' is taken\n")

    code, output = run("users", "set-role", "bob", "researcher")
    assert (code, output) == (0, "bob is now researcher\n")

    assert run("users", "deactivate", "bob") == (0, "deactivated bob\n")
    code, output = run("users", "list")
    assert code == 0
    lines = [line.split() for line in output.splitlines()]
    assert [line[1:] for line in lines] == [
        ["ada", "admin", "active"],
        ["bob", "researcher", "deactivated"],
    ]

    code, output = run("tokens", "create", "bob")
    assert (code, output) == (1, "error: bob is deactivated\n")
    assert run("users", "activate", "bob") == (0, "activated bob\n")
    code, output = run("tokens", "create", "bob", "--name", "laptop")
    assert code == 0
    assert output.startswith("smy_")


def test_last_admin_cannot_be_deactivated_from_the_cli() -> None:
    run("db", "upgrade")
    run("users", "create", "ada", "--role", "admin", "--generate-password")
    code, output = run("users", "deactivate", "ada")
    assert (code, output) == (1, "error: this is the last active admin; make another admin first\n")


def test_bad_input_is_a_clear_error() -> None:
    run("db", "upgrade")
    code, output = run("users", "create", "x", "--generate-password")
    assert code == 1
    assert output.startswith("error: username: a username is 2-64 characters")
    code, output = run("users", "deactivate", "ghost")
    assert (code, output) == (1, "error: no user named 'ghost'\n")
    code, _ = run("users", "create", "ada", "--role", "king")
    assert code == 2
