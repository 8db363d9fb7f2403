"""Starting a dataset job: everything that can be checked is checked at once, the row is
committed, and only then is its id sent to the worker (never the other way round, or a fast
worker could look for a row that is not there yet)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from app.datasets.formats import FORMAT_NAMES
from app.datasets.reading import kind_of
from app.errors import Conflict, InvalidInput, NotFound
from app.models import DatasetJob, DatasetJobKind, DatasetJobStatus, SnapshotKind, User
from app.models.base import utcnow
from app.schemas.dataset_jobs import ImportJobCreate
from app.schemas.snapshots import SnapshotCreate
from app.services.imports import resolve_import_path
from app.services.prompts import get_project_checked, storable_id
from app.services.runs.queueing import BrokerUnreachable, connected_sender
from app.services.snapshots import get_snapshot
from app.services.snapshots.filters import check_filters
from app.settings import Settings

TASK_NAME = "smiley.datasets.run"
UPLOADS_FOLDER = "uploads"
COPY_BLOCK = 1 << 20

# Sends a job's id to whatever runs it: the Celery `default` queue unless a caller says.
Enqueue = Callable[[Settings, int], None]


class UploadTooLarge(InvalidInput):
    code = "upload_too_large"
    status_code = 413


def start_import_job(
    db: Session,
    settings: Settings,
    project_id: int,
    *,
    acting: User,
    data: ImportJobCreate,
    upload: BinaryIO | None = None,
    upload_name: str | None = None,
    enqueue: Enqueue | None = None,
) -> DatasetJob:
    """An import of an uploaded file (streamed to disk here, up to settings.max_upload_bytes)
    or of `data.name` in the admin's import folder: exactly one of the two."""
    get_project_checked(db, project_id)
    if data.name is not None and upload is not None:
        raise InvalidInput(
            "give either an uploaded file or the name of a file in the import folder, not both",
            field="name",
        )
    if data.name is None and upload is None:
        raise InvalidInput("upload a file, or name a file in the import folder", field="file")
    if data.format is not None and data.format not in FORMAT_NAMES:
        raise InvalidInput(
            f"unknown format {data.format!r}; use one of {', '.join(FORMAT_NAMES)}",
            field="format",
        )
    if data.name is not None:
        if settings.import_dir is None:
            raise InvalidInput(
                "no import folder is set up (SMILEY_IMPORT_DIR), so files cannot be imported "
                "by name; upload the file instead",
                field="name",
            )
        path = resolve_import_path(settings.import_dir, data.name)
        kind_of(path.name)
        job = _new_job(
            project_id, acting, DatasetJobKind.import_rows, data.model_dump(mode="json"), data.name
        )
        job.bytes_total = path.stat().st_size
    else:
        assert upload is not None
        name = _plain_file_name(upload_name)
        kind_of(name)
        stored = _store_upload(settings, upload, Path(name).suffix.lower())
        job = _new_job(
            project_id, acting, DatasetJobKind.import_rows, data.model_dump(mode="json"), name
        )
        job.upload_path = stored.relative_to(settings.data_dir).as_posix()
        job.bytes_total = stored.stat().st_size
    return _commit_and_enqueue(db, settings, job, enqueue)


def start_snapshot_job(
    db: Session,
    settings: Settings,
    project_id: int,
    *,
    acting: User,
    data: SnapshotCreate,
    supersedes_id: int | None = None,
    enqueue: Enqueue | None = None,
) -> DatasetJob:
    """A snapshot of `project_id`, or (with `supersedes_id`) a new snapshot replacing one; the
    filters are checked against the project now, and again when the worker writes it."""
    if supersedes_id is not None:
        old = get_snapshot(db, supersedes_id) if storable_id(supersedes_id) else None
        if old is None:
            raise NotFound(f"no snapshot with id {supersedes_id}")
        if old.superseded_by_id is not None:
            raise Conflict(f"snapshot {old.id} is already superseded by {old.superseded_by_id}")
        if data.kind != old.kind:
            raise InvalidInput(
                f"a {old.kind.value} snapshot can only be superseded by another", field="kind"
            )
        project_id = old.project_id
    get_project_checked(db, project_id)
    selection = data.kind.value
    if data.kind == SnapshotKind.preference:
        selection = data.source or "pairs"
    check_filters(db, project_id, data.filters, selection)
    params = {"snapshot": data.model_dump(mode="json"), "supersedes_id": supersedes_id}
    job = _new_job(project_id, acting, DatasetJobKind.snapshot, params, data.name)
    return _commit_and_enqueue(db, settings, job, enqueue)


def _new_job(
    project_id: int, acting: User, kind: DatasetJobKind, params: dict[str, Any], source_name: str
) -> DatasetJob:
    return DatasetJob(
        project_id=project_id,
        kind=kind,
        status=DatasetJobStatus.queued,
        created_by_id=acting.id,
        params=params,
        source_name=source_name[:500],
        rows_done=0,
        bytes_done=0,
    )


def _plain_file_name(upload_name: str | None) -> str:
    """The uploaded file's own name, without any folders a browser or script sent with it."""
    name = PurePosixPath(PureWindowsPath(upload_name or "").name).name.strip()
    if not name or "\x00" in name:
        raise InvalidInput("the uploaded file has no name", field="file")
    return name


def _store_upload(settings: Settings, upload: BinaryIO, suffix: str) -> Path:
    """Copies the upload under `<data_dir>/uploads/`, refusing it once it passes the limit."""
    folder = settings.data_dir / UPLOADS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(16)}{suffix}"
    written = 0
    try:
        with path.open("xb") as out:
            while block := upload.read(COPY_BLOCK):
                written += len(block)
                if written > settings.max_upload_bytes:
                    raise UploadTooLarge(
                        f"the file is larger than the upload limit of {settings.max_upload_bytes:,}"
                        " bytes; put it in the import folder and import it by name",
                        field="file",
                    )
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _commit_and_enqueue(
    db: Session, settings: Settings, job: DatasetJob, enqueue: Enqueue | None
) -> DatasetJob:
    try:
        db.add(job)
        db.commit()
    except BaseException:
        db.rollback()
        remove_upload(settings, job.upload_path)
        raise
    try:
        (enqueue or send_to_worker)(settings, job.id)
    except Exception as error:
        # The row says what happened (job state lives in the database), and the caller gets
        # the failed job back rather than a job that waits for ever.
        job.status = DatasetJobStatus.failed
        job.error = (
            "could not queue the job: the job queue (broker) is unreachable; start it again "
            "once the broker is back"
            if isinstance(error, BrokerUnreachable)
            else f"could not queue the job: {type(error).__name__}: {error}"
        )
        job.finished_at = utcnow()
        db.commit()
        remove_upload(settings, job.upload_path)
    return job


def send_to_worker(settings: Settings, job_id: int) -> None:
    """The job's id on the `default` queue of the settings' broker; raises BrokerUnreachable
    within seconds (no publish retries) when the broker is down."""
    from worker.celery_app import DEFAULT_QUEUE

    with connected_sender(settings) as send:
        send(TASK_NAME, job_id, DEFAULT_QUEUE)


def remove_upload(settings: Settings, upload_path: str | None) -> None:
    if upload_path is not None:
        (settings.data_dir / upload_path).unlink(missing_ok=True)
