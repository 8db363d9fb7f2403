"""A full disk while a snapshot is written: a sentence saying so, no row, no half folder.

The data folder is a small tmpfs mounted by the test, and the snapshot asked for is larger than
it. Both ways of making a snapshot are tried: the service directly and the dataset job a worker
runs. Afterwards the space is all free again, proved by a small snapshot that fits."""

from __future__ import annotations

import gc
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.errors import DiskFull
from app.models import DatasetJob, DatasetJobStatus, Prompt, Role, Snapshot, SnapshotKind
from app.schemas.snapshots import SnapshotCreate
from app.services.dataset_jobs.running import run_dataset_job
from app.services.dataset_jobs.starting import start_snapshot_job
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import MigratedDatabases, make_user, unavailable
from tests.factories import make_project, make_prompt
from tests.faults.conftest import SECRET_KEY

# One group: each starts private servers on free ports and times windows of a few seconds.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

DISK_BYTES = 4 << 20
BIG_PROMPTS = 300
# Random hex does not compress much, so the parquet and arrow copies are near this size too.
PROMPT_CHARS = 10_000
FULL = (
    "the disk holding the data folder is full (no space left on device) while writing the "
    "snapshot; nothing was kept: free some space and try again"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
        if os.geteuid() == 0:
            unavailable(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        # A failed test's traceback can still hold the writer's open files: drop them first.
        gc.collect()
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def open_in(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def used(mount_point: Path) -> int:
    return shutil.disk_usage(mount_point).used


def test_a_snapshot_larger_than_the_disk_fails_clearly_and_leaves_nothing(
    small_disk: Path, tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    # The database lives off the small disk: only the snapshot files fill it.
    database_url = migrated_databases.sqlite(tmp_path / "smiley.sqlite3")
    settings = Settings(data_dir=small_disk, database_url=database_url, secret_key=SECRET_KEY)
    engine = make_engine(database_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as db:
        admin = make_user(db, "root-admin", Role.admin)
        big = make_project(db, "Big")
        db.execute(
            insert(Prompt),
            [
                {
                    "project_id": big.id,
                    "messages": [{"role": "user", "content": secrets.token_hex(PROMPT_CHARS // 2)}],
                    "source": "test",
                    "content_hash": f"big-{index}",
                }
                for index in range(BIG_PROMPTS)
            ],
        )
        small = make_project(db, "Small")
        for index in range(3):
            make_prompt(db, small, f"short prompt {index}")
        db.commit()
    # The one folder the service makes anyway, so that "empty" is exactly what is left.
    (small_disk / "snapshots").mkdir()
    empty = used(small_disk)
    request = SnapshotCreate(name="all prompts", kind=SnapshotKind.prompts)

    with sessions() as db:
        with pytest.raises(DiskFull) as refused:
            create_snapshot(db, settings, big.id, request, admin)
        assert (refused.value.message, refused.value.status_code) == (FULL, 507)
        # Every file closed, though the error (and its traceback) is still alive here.
        assert open_in(small_disk) == []
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 0
    assert os.listdir(small_disk / "snapshots") == []
    assert used(small_disk) == empty

    # The same through the dataset job a worker runs: the job fails with the sentence.
    with sessions() as db:
        job = start_snapshot_job(
            db, settings, big.id, acting=admin, data=request, enqueue=lambda *_: None
        )
    run_dataset_job(job.id, settings=settings, sessions=sessions)
    with sessions() as db:
        failed = db.get(DatasetJob, job.id)
        assert failed is not None
        assert (failed.status, failed.error, failed.snapshot_id) == (
            DatasetJobStatus.failed,
            FULL,
            None,
        )
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 0
    assert os.listdir(small_disk / "snapshots") == []
    assert open_in(small_disk) == []
    assert used(small_disk) == empty

    # Every byte came back: a snapshot that fits is written whole.
    with sessions() as db:
        made = create_snapshot(
            db, settings, small.id, SnapshotCreate(name="few", kind=SnapshotKind.prompts), admin
        )
        assert made.row_counts["train"] + made.row_counts["test"] == 3
    assert os.listdir(small_disk / "snapshots") == [Path(made.path).name]
    engine.dispose()
