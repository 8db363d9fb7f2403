"""A database of its own per test for code that opens its own sessions and commits (the
runner, real worker processes), so nothing leaks into the rolled-back tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app import migrate
from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'own.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    url, admin = create_postgres_database("smiley_worker")
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(admin, url)
