"""A real `smiley worker` process for end-to-end tests, and the labels it trains on."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy.orm import Session, sessionmaker

from app.models import Model, ModelRole, Project, Run, Snapshot, SnapshotKind, User
from app.schemas.snapshots import SnapshotCreate
from app.services.imports import import_stream
from app.services.snapshots import create_snapshot
from app.settings import Settings
from worker.training.synthetic import sft_rows

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL to the worker and its pool: what a lost machine looks like."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            # To the main process only: it stops its pool itself (see stop_worker in
            # tests/worker/test_dataset_job_worker.py for what a group-wide SIGTERM costs).
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(
    settings: Settings, name: str, concurrency: int = 1, **env_extra: str
) -> WorkerProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
    env.update(
        {
            "SMILEY_DATA_DIR": str(settings.data_dir),
            "SMILEY_DATABASE_URL": settings.resolved_database_url,
            "SMILEY_BROKER_URL": settings.broker_url,
            "SMILEY_SECRET_KEY": settings.resolved_secret_key,
            "SMILEY_WORKER_HEARTBEAT_SECONDS": "1",
            "SMILEY_RUN_HEARTBEAT_SECONDS": "1",
            # One torch thread: the other cores run the other tests (see tests/conftest.py).
            "OMP_NUM_THREADS": "1",
            **env_extra,
        }
    )
    log = settings.data_dir.parent / f"worker-{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            "--queues",
            "gpu,default",
            "--name",
            name,
            "--concurrency",
            str(concurrency),
        ],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(process, log)


def wait_for(check: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if worker.process.poll() is not None:
            raise AssertionError(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.output()[-4000:]}")


def tiny_base_model(db: Session, settings: Settings, project: Project, tiny: Path) -> Model:
    """The tiny model (tests/conftest.py's `tiny`), copied into the data folder, registered."""
    folder = settings.data_dir / "models" / "tiny"
    shutil.copytree(tiny, folder)
    model = Model(
        name="tiny",
        role=ModelRole.policy,
        path=str(folder.relative_to(settings.data_dir)),
        project_id=project.id,
    )
    db.add(model)
    db.commit()
    return model


def sft_snapshot(db: Session, settings: Settings, project: Project, user: User) -> Snapshot:
    """Demonstrations imported as labels, then snapshotted by the snapshot service."""
    lines = "".join(json.dumps({"messages": row["messages"]}) + "\n" for row in sft_rows(64))
    result = import_stream(
        db,
        project.id,
        io.BytesIO(lines.encode()),
        "demonstrations.jsonl",
        on_error="stop",
        acting=user,
    )
    assert result.demonstrations == 64, result
    return create_snapshot(
        db, settings, project.id, SnapshotCreate(name="demos", kind=SnapshotKind.sft), user
    )


def run_state(sessions: sessionmaker[Session], run_id: int) -> Run:
    with sessions() as db:
        run = db.get(Run, run_id)
        assert run is not None
        db.expunge(run)
        return run


def complete_checkpoints(settings: Settings, run_id: int) -> list[int]:
    folder = settings.data_dir / f"runs/{run_id}/checkpoints"
    return sorted(
        int(path.parent.name.removeprefix("checkpoint-"))
        for path in folder.glob("checkpoint-*/smiley-complete.json")
    )


def group_members(launch_folder: Path) -> list[psutil.Process]:
    """Every process of a run's launched group (the launcher and its ranks name the folder)."""
    found = []
    for process in psutil.process_iter():
        try:
            if str(launch_folder) in process.cmdline():
                found.append(process)
        except psutil.Error:
            continue
    return found
