"""A dataset job whose worker died is marked failed once it wrote no progress for a while;
one that still writes progress is left alone."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy.orm import Session

from app.models import DatasetJob, DatasetJobKind, DatasetJobStatus
from app.models.base import utcnow
from app.services.dataset_jobs import LiveProgress, reap_stale_dataset_jobs
from app.services.dataset_jobs.progress import progress_path
from app.settings import Settings
from tests.factories import make_project

STALE = timedelta(minutes=15)


def running_job(db: Session, project_id: int, started_minutes_ago: float) -> DatasetJob:
    job = DatasetJob(
        project_id=project_id,
        kind=DatasetJobKind.import_rows,
        status=DatasetJobStatus.running,
        params={},
        source_name="big.jsonl",
        rows_done=0,
        bytes_done=0,
        started_at=utcnow() - timedelta(minutes=started_minutes_ago),
    )
    db.add(job)
    db.commit()
    return job


def test_only_jobs_silent_for_longer_than_the_limit_are_reaped(
    db: Session, settings: Settings
) -> None:
    project = make_project(db)
    fresh = running_job(db, project.id, 1)
    silent = running_job(db, project.id, 60)
    writing = running_job(db, project.id, 60)
    LiveProgress(settings, writing.id).update(5000, 1 << 20, force=True)
    old = progress_path(settings, silent.id)
    LiveProgress(settings, silent.id).update(1000, 1 << 10, force=True)
    an_hour_ago = (utcnow() - timedelta(hours=1)).timestamp()
    os.utime(old, (an_hour_ago, an_hour_ago))

    assert reap_stale_dataset_jobs(db, settings, stale_after=STALE) == [silent.id]
    db.refresh(silent)
    assert silent.status == DatasetJobStatus.failed
    assert silent.error is not None
    assert silent.error.startswith("worker lost: no progress since ")
    assert silent.error.endswith("; nothing of this job was stored, start it again")
    assert not old.exists()
    for alive in (fresh, writing):
        db.refresh(alive)
        assert (alive.status, alive.error) == (DatasetJobStatus.running, None)


def test_a_job_that_never_wrote_progress_is_judged_by_its_start(
    db: Session, settings: Settings
) -> None:
    project = make_project(db)
    job = running_job(db, project.id, 20)
    assert reap_stale_dataset_jobs(db, settings, stale_after=STALE) == [job.id]
    assert reap_stale_dataset_jobs(db, settings, stale_after=STALE) == []
