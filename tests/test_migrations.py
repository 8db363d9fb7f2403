"""The migrations build exactly the models' schema, and undo it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app import migrate
from app.db import make_engine
from app.models import Base
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    url, admin = create_postgres_database("smiley_migrations")
    try:
        yield url
    finally:
        drop_postgres_database(admin, url)


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": migrate.include_name}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        names = inspect(engine).get_table_names()
        return {name for name in names if migrate.include_name(name, "table", {})} - {
            "alembic_version"
        }
    finally:
        engine.dispose()


def test_upgraded_database_matches_the_models(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    assert _diff(fresh_url) == []
    assert _tables(fresh_url) == set(Base.metadata.tables)


def test_upgrade_downgrade_round_trip(fresh_url: str) -> None:
    migrate.upgrade(fresh_url)
    migrate.downgrade(fresh_url, "base")
    assert _tables(fresh_url) == set()
    migrate.upgrade(fresh_url)
    assert _diff(fresh_url) == []


def test_migration_history_is_linear() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1


def test_sqlite_search_tables_are_filled_from_the_rows_already_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'before.sqlite3'}"
    migrate.upgrade(url, "0008")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO projects (id, name, description, label_schema, is_archived, "
                    "updated_at, created_at) VALUES (1, 'P', '', '{}', 0, '2026-01-01', "
                    "'2026-01-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO prompts (id, project_id, messages, category, source, "
                    "content_hash, created_at) VALUES (7, 1, :messages, 'other', 'test', 'h', "
                    "'2026-01-01')"
                ),
                {"messages": '[{"role": "user", "content": "Caf\\u00e9 zebra?"}]'},
            )
            connection.execute(
                text(
                    "INSERT INTO responses (id, prompt_id, content, source, source_name, "
                    "created_at) VALUES (9, 7, 'Striped horse.', 'import', 'test', '2026-01-01')"
                )
            )
        migrate.upgrade(url)
        with engine.connect() as connection:
            for fts, words, rowid in (
                ("prompts_fts", '"café" "zebra"', 7),
                ("prompts_fts", '"user"', 7),
                ("responses_fts", '"striped"', 9),
            ):
                found = connection.execute(
                    text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH :q"), {"q": words}
                )
                assert list(found.scalars()) == [rowid]
        migrate.downgrade(url, "0008")
        with engine.connect() as connection:
            left = connection.execute(
                text("SELECT name FROM sqlite_master WHERE name GLOB '*_fts*'")
            ).scalars()
            assert list(left) == []
    finally:
        engine.dispose()


def test_sqlite_table_rebuilds_keep_the_rows_that_refer_to_the_table(tmp_path: Path) -> None:
    # Migrations 0011 and 0013 rebuild `runs` on SQLite; with foreign keys on, the rebuild's
    # DROP cascaded to `run_metrics` and emptied it (migrations/env.py turns them off).
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    migrate.upgrade(url, "0010")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO projects (id, name, description, label_schema, is_archived, "
                    "updated_at, created_at) VALUES (1, 'P', '', '{}', 0, '2026-01-01', "
                    "'2026-01-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO runs (id, project_id, kind, status, hyperparameters, metrics, "
                    "artifacts, base_model_ref, progress, attempts, max_attempts, "
                    "cancel_requested, created_at) VALUES (3, 1, 'sft', 'succeeded', '{}', "
                    "'{}', '{}', 'tiny', 1.0, 1, 3, 0, '2026-01-01')"
                )
            )
            connection.execute(
                text(
                    'INSERT INTO run_metrics (run_id, step, "values", created_at) VALUES '
                    "(3, 1, '{\"loss\": 1.5}', '2026-01-01')"
                )
            )
        migrate.upgrade(url)
        migrate.downgrade(url, "0010")
        with engine.connect() as connection:
            metrics = connection.execute(text("SELECT run_id, step FROM run_metrics"))
            assert list(metrics) == [(3, 1)]
            assert list(connection.execute(text("PRAGMA foreign_key_check"))) == []
    finally:
        engine.dispose()


def test_sqlite_suggestion_columns_keep_comparisons_items_and_pairs(tmp_path: Path) -> None:
    # Migration 0015 rebuilds `comparisons` and `queues` on SQLite; their items and pairs
    # (ON DELETE CASCADE) must survive the upgrade and the downgrade.
    url = f"sqlite:///{tmp_path / 'labels.sqlite3'}"
    migrate.upgrade(url, "0013")
    engine = make_engine(url)
    rows = (
        "INSERT INTO projects (id, name, description, label_schema, is_archived, updated_at, "
        "created_at) VALUES (1, 'P', '', '{}', 0, '2026-01-01', '2026-01-01')",
        "INSERT INTO queues (id, project_id, name, kind, overlap, max_overlap, priority, "
        "lease_seconds, max_active_leases, open_to_all, is_paused, created_at) VALUES "
        "(2, 1, 'Q', 'comparison', 1, 1, 0, 60, 1, 1, 0, '2026-01-01')",
        "INSERT INTO prompts (id, project_id, messages, category, source, content_hash, "
        "created_at) VALUES (3, 1, '[]', 'other', 'test', 'h', '2026-01-01')",
        "INSERT INTO responses (id, prompt_id, content, source, source_name, created_at) "
        "VALUES (4, 3, 'a', 'import', 't', '2026-01-01'), (5, 3, 'b', 'import', 't', "
        "'2026-01-01')",
        "INSERT INTO comparisons (id, prompt_id, source, source_name, all_unacceptable, "
        "comment, created_at) VALUES (6, 3, 'import', 't', 0, '', '2026-01-01')",
        "INSERT INTO comparison_items (comparison_id, response_id, rank, flags, flag_note) "
        "VALUES (6, 4, 1, '[]', ''), (6, 5, 2, '[]', '')",
        "INSERT INTO pairs (id, comparison_id, prompt_id, winner_response_id, "
        "loser_response_id) VALUES (7, 6, 3, 4, 5)",
    )
    try:
        with engine.begin() as connection:
            for row in rows:
                connection.execute(text(row))
        migrate.upgrade(url)
        with engine.connect() as connection:
            assert list(connection.execute(text("SELECT suggestion_mode FROM queues"))) == [
                ("off",)
            ]
            assert connection.scalar(text("SELECT count(*) FROM comparison_items")) == 2
            assert connection.scalar(text("SELECT count(*) FROM pairs")) == 1
        migrate.downgrade(url, "0013")
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM comparison_items")) == 2
            assert connection.scalar(text("SELECT count(*) FROM pairs")) == 1
            assert list(connection.execute(text("PRAGMA foreign_key_check"))) == []
    finally:
        engine.dispose()
