"""Running a dataset job in the worker: claim the row atomically (a message delivered twice
runs the job once), run the import or snapshot with live progress, record how it ended."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.datasets.dialogue import DialogueFilters
from app.errors import DomainError, InvalidInput
from app.models import DatasetJob, DatasetJobKind, DatasetJobStatus, User
from app.models.base import utcnow
from app.schemas.dataset_jobs import ImportJobCreate
from app.schemas.imports import ImportProgress
from app.schemas.snapshots import SnapshotCreate, SnapshotOut
from app.services.dataset_jobs.progress import LiveProgress
from app.services.dataset_jobs.starting import remove_upload
from app.services.imports import import_stream, resolve_import_path
from app.services.snapshots import create_snapshot, supersede_snapshot
from app.settings import Settings


def run_dataset_job(
    job_id: int,
    *,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
    live_progress: type[LiveProgress] = LiveProgress,
) -> None:
    """Claims the job (queued -> running; a job already claimed or finished is left alone),
    runs it with progress, and stores its result or error. The uploaded file is deleted
    afterwards whatever happened. `settings` and `sessions` default to the process's own;
    `live_progress` is what keeps the progress file (tests watch it through a subclass)."""
    if settings is None or sessions is None:
        from app.db import get_engine, session_factory
        from app.settings import get_settings

        settings = settings or get_settings()
        sessions = sessions or session_factory(get_engine(settings))
    with sessions() as db:
        claimed = db.execute(
            update(DatasetJob)
            .where(DatasetJob.id == job_id, DatasetJob.status == DatasetJobStatus.queued)
            .values(status=DatasetJobStatus.running, started_at=utcnow())
        )
        db.commit()
        if claimed.rowcount != 1:
            return
        job = db.get(DatasetJob, job_id)
        assert job is not None
        db.refresh(job)
        upload_path = job.upload_path
        progress = live_progress(settings, job_id)
        try:
            if job.kind == DatasetJobKind.import_rows:
                _run_import(db, settings, job, progress)
            else:
                _run_snapshot(db, settings, job, progress)
        except DomainError as error:
            # An expected failure: a file that cannot be read, filters that no longer apply.
            _fail(db, job_id, error.message)
        except Exception as error:
            _fail(db, job_id, f"{type(error).__name__}: {error}")
            raise  # unexpected: the worker logs the traceback
        finally:
            progress.remove()
            remove_upload(settings, upload_path)


def _acting(db: Session, job: DatasetJob) -> User:
    user = db.get(User, job.created_by_id) if job.created_by_id is not None else None
    if user is None:
        raise InvalidInput("the user who started this job no longer exists")
    return user


def _run_import(db: Session, settings: Settings, job: DatasetJob, live: LiveProgress) -> None:
    data = ImportJobCreate.model_validate(job.params)
    acting = _acting(db, job)
    if job.upload_path is not None:
        path, name = settings.data_dir / job.upload_path, job.source_name
    else:
        if settings.import_dir is None:
            raise InvalidInput("no import folder is set up (SMILEY_IMPORT_DIR) on the worker")
        assert data.name is not None
        path = resolve_import_path(settings.import_dir, data.name)
        name = path.name
    with path.open("rb") as stream:

        def report(counts: ImportProgress) -> None:
            live.update(counts.rows_read, stream.tell())

        result = import_stream(
            db,
            job.project_id,
            stream,
            name,
            format=data.format,
            on_error=data.on_error,
            acting=acting,
            source=data.source,
            dialogue_filters=DialogueFilters(
                min_turns=data.min_turns,
                max_turn_chars=data.max_turn_chars,
                user_speaker=data.user_speaker,
            ),
            progress=report,
        )
        bytes_read = stream.tell()
    job = _reloaded(db, job.id)
    job.rows_done = result.rows_read
    job.bytes_done = bytes_read
    job.result = result.model_dump(mode="json")
    job.finished_at = utcnow()
    if result.stopped and result.stop_error is not None:
        job.status = DatasetJobStatus.failed
        job.error = (
            f"line {result.stop_error.line}: {result.stop_error.reason} "
            "(the import stopped there and nothing of it was kept)"
        )
    else:
        job.status = DatasetJobStatus.succeeded
    db.commit()


def _run_snapshot(db: Session, settings: Settings, job: DatasetJob, live: LiveProgress) -> None:
    data = SnapshotCreate.model_validate(job.params["snapshot"])
    supersedes_id = job.params.get("supersedes_id")
    acting = _acting(db, job)

    def report(rows: int) -> None:
        live.update(rows, 0)

    if supersedes_id is None:
        snapshot = create_snapshot(db, settings, job.project_id, data, acting, progress=report)
    else:
        snapshot = supersede_snapshot(db, settings, supersedes_id, data, acting, progress=report)
    job = _reloaded(db, job.id)
    job.status = DatasetJobStatus.succeeded
    job.snapshot_id = snapshot.id
    job.rows_done = sum(snapshot.row_counts.values())
    job.result = SnapshotOut.model_validate(snapshot).model_dump(mode="json")
    job.finished_at = utcnow()
    db.commit()


def _reloaded(db: Session, job_id: int) -> DatasetJob:
    job = db.get(DatasetJob, job_id)
    assert job is not None
    db.refresh(job)
    return job


def _fail(db: Session, job_id: int, message: str) -> None:
    db.rollback()
    job = _reloaded(db, job_id)
    job.status = DatasetJobStatus.failed
    job.error = message or "the job failed"
    job.finished_at = utcnow()
    db.commit()
