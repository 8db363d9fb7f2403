"""A live Smiley (uvicorn in a thread, its own SQLite file); headless Chromium comes from
tests/conftest.py (one per test process, shared with tests/hostile)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.main import create_app
from app.settings import Settings
from tests.conftest import MigratedDatabases


@dataclass
class LiveServer:
    url: str
    sessions: session_factory  # type: ignore[valid-type]

    def db(self) -> Session:
        return self.sessions()


@pytest.fixture
def live_server(tmp_path: Path, migrated_databases: MigratedDatabases) -> Iterator[LiveServer]:
    url = migrated_databases.sqlite(tmp_path / "browser.sqlite3")
    engine = make_engine(url)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, secret_key="b" * 40)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield LiveServer(url=f"http://127.0.0.1:{port}", sessions=session_factory(engine))
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


def save_screenshot(page: object, name: str) -> None:
    """With SMILEY_SCREENSHOT_DIR set, the page as the README shows it (docs/screenshots/):
    `SMILEY_SCREENSHOT_DIR=docs/screenshots .venv/bin/pytest -n 0 tests/browser -k "hub or
    review_flow or tie_and"` retakes them all."""
    folder = os.environ.get("SMILEY_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)  # type: ignore[attr-defined]
