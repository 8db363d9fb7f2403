"""Jobs whose worker died. A killed worker's message is acknowledged anyway (or redelivered an
hour later, when the claim refuses it), so a running job would stay `running` for ever. Every
live worker's heartbeat looks for running jobs that wrote no progress for a while and marks
them failed: an import is one transaction and a snapshot is renamed into place only when
complete, so nothing of such a job was stored, and it can simply be started again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import DatasetJob, DatasetJobStatus
from app.models.base import utcnow
from app.services.dataset_jobs.progress import progress_path
from app.services.dataset_jobs.starting import remove_upload
from app.settings import Settings


def last_sign_of_life(settings: Settings, job: DatasetJob) -> datetime | None:
    """When the job last wrote progress, or started if it never did."""
    latest = job.started_at
    try:
        written = datetime.fromtimestamp(progress_path(settings, job.id).stat().st_mtime, UTC)
    except OSError:
        return latest
    return written if latest is None or written > latest else latest


def reap_stale_dataset_jobs(
    db: Session, settings: Settings, *, stale_after: timedelta, now: datetime | None = None
) -> list[int]:
    now = now or utcnow()
    reaped: list[int] = []
    for job in db.scalars(
        select(DatasetJob)
        .where(DatasetJob.status == DatasetJobStatus.running)
        .order_by(DatasetJob.id)
    ):
        seen = last_sign_of_life(settings, job)
        if seen is not None and now - seen <= stale_after:
            continue
        job.status = DatasetJobStatus.failed
        job.error = (
            "worker lost: no progress since "
            f"{seen.isoformat(timespec='seconds') if seen else 'it started'}; nothing of this "
            "job was stored, start it again"
        )
        job.finished_at = now
        progress_path(settings, job.id).unlink(missing_ok=True)
        remove_upload(settings, job.upload_path)
        job.upload_path = None
        reaped.append(job.id)
    db.commit()
    return reaped
