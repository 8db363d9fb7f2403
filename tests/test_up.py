"""`smiley up` as a user runs it: a real web server and worker in subprocesses.

The README's promise, checked end to end: from an empty folder to a healthy system, logged in as
the printed admin, with a labeler created; and the same with PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    REDIS_URL,
    create_postgres_database,
    csrf_from,
    drop_postgres_database,
    redis_db,
    unavailable,
)

pytestmark = pytest.mark.slow

PASSWORD_LINE = re.compile(r"password: (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Running:
    process: subprocess.Popen[str]
    base_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def start_up(data_dir: Path, env_extra: dict[str, str] | None = None) -> Running:
    port = free_port()
    log = data_dir.parent / f"up-{port}.log"
    # Only the settings this test chooses: nothing SMILEY_* leaks in from the caller's shell.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
    env.update(
        {"SMILEY_DATA_DIR": str(data_dir), "SMILEY_WORKER_HEARTBEAT_SECONDS": "1"},
        **(env_extra or {}),
    )
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up", "--port", str(port)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=data_dir.parent,
        env=env,
    )
    return Running(process=process, base_url=f"http://127.0.0.1:{port}", log=log)


def wait_healthy(running: Running, timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            pytest.fail(f"smiley up exited early:\n{running.output()}")
        try:
            response = httpx.get(f"{running.base_url}/healthz?probe=true", timeout=15)
            last = response.json()
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.5)
    pytest.fail(f"not healthy after {timeout}s: {last}\n{running.output()}")


def admin_health(running: Running) -> dict[str, object]:
    """/healthz as the printed admin sees it: anyone else gets the status alone."""
    password = PASSWORD_LINE.search(running.output())
    assert password, running.output()
    with httpx.Client(base_url=running.base_url) as browser:
        page = browser.get("/login")
        answer = browser.post(
            "/login",
            data={
                "username": "admin",
                "password": password.group(1),
                "csrf_token": csrf_from(page.text),
            },
        )
        assert answer.status_code == 303
        response = browser.get("/healthz")
    assert response.status_code == 200, response.text
    return response.json()


def stop(running: Running) -> None:
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(timeout=40)


def worker_pids(data_dir: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-f", "app.cli worker"], capture_output=True, text=True)
    pids = []
    for pid in found.stdout.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"SMILEY_DATA_DIR={data_dir}".encode() in environ:
            pids.append(pid)
    return pids


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "smiley-data"


def test_up_from_nothing_to_admin_creating_a_labeler(data_dir: Path) -> None:
    running = start_up(data_dir)
    try:
        assert wait_healthy(running) == {"status": "ok"}
        health = admin_health(running)
        assert health["status"] == "ok"
        assert health["database"] == {"ok": True, "detail": "sqlite", "extra": {}}
        assert health["broker"] == {
            "ok": True,
            "detail": f"embedded (filesystem) at {data_dir / 'broker'}",
            "extra": {},
        }
        assert (data_dir / "smiley.sqlite3").exists()
        assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600

        password = PASSWORD_LINE.search(running.output())
        assert password, running.output()
        with httpx.Client(base_url=running.base_url) as browser:
            page = browser.get("/login")
            answer = browser.post(
                "/login",
                data={
                    "username": "admin",
                    "password": password.group(1),
                    "csrf_token": csrf_from(page.text),
                },
            )
            assert (answer.status_code, answer.headers["location"]) == (303, "/account/password")
            form = browser.get("/account/password")
            answer = browser.post(
                "/account/password",
                data={
                    "current_password": password.group(1),
                    "new_password": "my own admin password",
                    "confirm_password": "my own admin password",
                    "csrf_token": csrf_from(form.text),
                },
            )
            assert answer.status_code == 303
            users_page = browser.get("/admin/users")
            answer = browser.post(
                "/admin/users",
                data={
                    "username": "lena",
                    "role": "labeler",
                    "password": "",
                    "csrf_token": csrf_from(users_page.text),
                },
            )
            assert answer.status_code == 201
            assert 'data-testid="one-time-password"' in answer.text
        assert worker_pids(data_dir), "the worker should run beside the web app"
    finally:
        stop(running)
    assert running.process.returncode is not None
    deadline = time.monotonic() + 30
    while worker_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert worker_pids(data_dir) == []

    # A second start keeps the data and prints no password again.
    again = start_up(data_dir)
    try:
        wait_healthy(again)
        assert "password:" not in again.output()
    finally:
        stop(again)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url, admin = create_postgres_database("smiley_up")
    try:
        yield url
    finally:
        drop_postgres_database(admin, url)


@pytest.fixture
def redis_broker_url() -> Iterator[str]:
    import redis

    url = f"{REDIS_URL}/{redis_db(0)}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    client.flushdb()
    yield url
    client.flushdb()


def test_up_at_scale_with_postgresql_and_redis(
    data_dir: Path, postgres_url: str, redis_broker_url: str
) -> None:
    running = start_up(
        data_dir,
        {"SMILEY_DATABASE_URL": postgres_url, "SMILEY_BROKER_URL": redis_broker_url},
    )
    try:
        assert wait_healthy(running) == {"status": "ok"}
        health = admin_health(running)
        assert health["database"] == {"ok": True, "detail": "postgresql", "extra": {}}
        assert health["broker"]["detail"] == redis_broker_url  # type: ignore[index]
        assert not (data_dir / "smiley.sqlite3").exists()
        assert not (data_dir / "broker").exists()
    finally:
        stop(running)
