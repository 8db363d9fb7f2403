"""Smiley installed without extras, in a fresh virtualenv, works with Redis as its broker.

A plain `pip install -e .` (the README's install, and the Docker image's) once lacked what
kombu's Redis transport imports, so with SMILEY_BROKER_URL=redis://… every run launch
answered 500 and `smiley worker` exited 1 (the dev extra hid it from every other test).
Here the web app of such an install queues a run through Redis and its worker takes it;
without the `train` extra that worker cannot train, and the run fails saying what to install."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import Role, SnapshotKind
from app.settings import Settings
from tests.conftest import MigratedDatabases, bearer, make_token, make_user, redis_db
from tests.factories import make_project
from tests.faults.conftest import SECRET_KEY, free_port
from tests.training_factories import make_model, make_snapshot

# Its own group: the install takes about half a minute, best overlapped with the quick tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("plain-install")]

REPO = Path(__file__).resolve().parents[1]
NO_TORCH = (
    "this worker cannot train: transformers is not installed. Install Smiley with the `train` "
    "extra on GPU workers (pip install -e '.[train]'), then resume the run"
)


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plain-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [
            venv / "bin" / "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    # Truly without extras: no training stack, no test tools.
    for absent in ("torch", "pytest"):
        found = subprocess.run([venv / "bin" / "python", "-c", f"import {absent}"])
        assert found.returncode == 1, f"{absent} is installed in the plain virtualenv"
    return venv


@pytest.fixture
def broker_url() -> Iterator[str]:
    url = f"redis://127.0.0.1:6379/{redis_db(0)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


class Process:
    def __init__(self, command: list[str | Path], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=log.parent
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.log.name} exited {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text()[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(check: object, process: Process, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.check_alive()
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds}s waiting for {what}:\n{process.tail()}")


def test_a_plain_install_queues_a_run_through_redis_and_its_worker_takes_it(
    plain_install: Path, broker_url: str, tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    data_dir = tmp_path / "data"
    database_url = migrated_databases.sqlite(tmp_path / "smiley.sqlite3")
    settings = Settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET_KEY)
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as db:
        project = make_project(db)
        base = make_model(db, settings, "base")
        snapshot = make_snapshot(db, settings, project, SnapshotKind.sft)
        headers = bearer(make_token(db, make_user(db, "rhea", Role.researcher)))
    engine.dispose()

    env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
    env.update(
        SMILEY_DATA_DIR=str(data_dir),
        SMILEY_DATABASE_URL=database_url,
        SMILEY_BROKER_URL=broker_url,
        SMILEY_SECRET_KEY=SECRET_KEY,
    )
    env.pop("PYTHONPATH", None)  # only what the plain install brings
    smiley = plain_install / "bin" / "smiley"
    port = free_port()
    web = Process([smiley, "web", "--port", str(port)], env, tmp_path / "web.log")
    worker: Process | None = None
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=headers, timeout=30)
    try:

        def answers() -> bool:
            try:
                return api.get("/me").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, web, 60, "the plain install's web app")
        launched = api.post(
            f"/projects/{project.id}/runs",
            json={
                "kind": "sft",
                "base_model_id": base.id,
                "snapshot_id": snapshot.id,
                "hyperparameters": {"max_steps": 1},
            },
        )
        assert launched.status_code == 202, launched.text
        run_id = launched.json()["id"]
        assert launched.json()["status"] == "queued"
        assert redis.Redis.from_url(broker_url).llen("gpu") == 1

        worker = Process([smiley, "worker", "--name", "plain@%h"], env, tmp_path / "worker.log")

        def finished() -> bool:
            return api.get(f"/runs/{run_id}").json()["status"] not in ("queued", "running")

        wait_until(finished, worker, 90, f"run {run_id} to be taken by the plain worker")
        run = api.get(f"/runs/{run_id}").json()
        assert (run["status"], run["error"]) == ("failed", NO_TORCH)
    finally:
        api.close()
        if worker is not None:
            worker.stop()
        web.stop()
