"""Reading dataset jobs (with a running job's live progress) and a snapshot's files."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import DatasetJob, DatasetJobKind, DatasetJobStatus
from app.schemas.dataset_jobs import DatasetJobOut
from app.schemas.imports import ImportResult
from app.schemas.snapshots import SnapshotOut
from app.services.dataset_jobs.progress import read_live_progress
from app.services.prompts import get_project_checked, storable_id
from app.services.snapshots import get_snapshot
from app.services.snapshots.writers import SPLITS
from app.settings import Settings

MAX_LISTED = 100


def get_dataset_job(db: Session, settings: Settings, job_id: int) -> DatasetJobOut:
    job = db.get(DatasetJob, job_id) if storable_id(job_id) else None
    if job is None:
        raise NotFound(f"no dataset job with id {job_id}")
    return job_out(settings, job)


def list_dataset_jobs(
    db: Session, settings: Settings, project_id: int, *, limit: int = 20
) -> list[DatasetJobOut]:
    """A project's jobs, newest first."""
    get_project_checked(db, project_id)
    if not 1 <= limit <= MAX_LISTED:
        raise InvalidInput(f"limit must be between 1 and {MAX_LISTED}", field="limit")
    query = (
        select(DatasetJob)
        .where(DatasetJob.project_id == project_id)
        .order_by(DatasetJob.id.desc())
        .limit(limit)
    )
    return [job_out(settings, job) for job in db.scalars(query)]


def job_out(settings: Settings, job: DatasetJob) -> DatasetJobOut:
    rows_done, bytes_done = job.rows_done, job.bytes_done
    if job.status == DatasetJobStatus.running:
        live = read_live_progress(settings, job.id)
        if live is not None:
            rows_done, bytes_done = live
    result: ImportResult | SnapshotOut | None = None
    if job.result is not None:
        if job.kind == DatasetJobKind.import_rows:
            result = ImportResult.model_validate(job.result)
        else:
            result = SnapshotOut.model_validate(job.result)
    return DatasetJobOut(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        status=job.status,
        source_name=job.source_name,
        rows_done=rows_done,
        bytes_done=bytes_done,
        bytes_total=job.bytes_total,
        fraction=_fraction(job, bytes_done),
        result=result,
        error=job.error,
        snapshot_id=job.snapshot_id,
        created_by_id=job.created_by_id,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        resent_at=job.resent_at,
    )


def _fraction(job: DatasetJob, bytes_done: int) -> float | None:
    if job.status == DatasetJobStatus.succeeded:
        return 1.0
    if job.status == DatasetJobStatus.queued:
        return 0.0
    if job.kind == DatasetJobKind.import_rows and job.bytes_total:
        return min(1.0, bytes_done / job.bytes_total)
    return None


# --- a snapshot's files, for download -------------------------------------------------------

# Every file a snapshot folder holds at its top (the `datasets` folder is for load_from_disk
# on the same machine, not for download), with its media type.
SNAPSHOT_FILES: dict[str, str] = {
    **{f"{split}.jsonl": "application/jsonl" for split in SPLITS},
    **{f"{split}.parquet": "application/vnd.apache.parquet" for split in SPLITS},
    "snapshot.json": "application/json",
}


def snapshot_file(db: Session, settings: Settings, snapshot_id: int, name: str) -> Path:
    """The file `name` of a snapshot: only the names above, only inside its own folder."""
    snapshot = get_snapshot(db, snapshot_id) if storable_id(snapshot_id) else None
    if snapshot is None:
        raise NotFound(f"no snapshot with id {snapshot_id}")
    if name not in SNAPSHOT_FILES:
        raise NotFound(
            f"snapshot {snapshot.id} has no file {name!r}; "
            f"its files are {', '.join(SNAPSHOT_FILES)}"
        )
    folder = (settings.data_dir / snapshot.path).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise NotFound(f"snapshot {snapshot.id}'s {name} is missing from the data folder")
    return path
