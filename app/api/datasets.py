"""/api/v1 datasets in and out, for staff: imports and snapshots start background jobs (202
with the job, to be polled); snapshots are read, previewed and downloaded; raw and KTO
exports are written at once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api.errors import STANDARD_ERRORS, documented
from app.deps import ApiStaff, SessionDep, SettingsDep, read_only
from app.errors import InvalidInput
from app.schemas import common
from app.schemas.dataset_jobs import DatasetJobOut, ImportJobCreate, SnapshotPreview
from app.schemas.snapshots import ExportOut, SnapshotCreate, SnapshotFilters, SnapshotOut
from app.services import dataset_jobs, snapshots
from app.services.dataset_jobs import SNAPSHOT_FILES, UploadTooLarge
from app.services.prompts import get_project_checked

router = APIRouter(responses=STANDARD_ERRORS, tags=["datasets"])

JobLimit = Annotated[int, Query(ge=1, le=dataset_jobs.MAX_LISTED)]
# What a multipart body may carry beside the file itself (boundaries, headers, form fields).
FORM_OVERHEAD = 64 * 1024
FORM_FIELDS = [name for name in ImportJobCreate.model_fields if name != "name"]

IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Either a file uploaded as multipart/form-data (field `file`, with the "
        "other fields of ImportJobCreate as form fields), or JSON naming a file in the import "
        "folder (SMILEY_IMPORT_DIR).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{name: {"type": "string"} for name in FORM_FIELDS},
                    },
                }
            },
            # Inline: no route takes ImportJobCreate as a declared body, so it is no component.
            "application/json": {"schema": ImportJobCreate.model_json_schema()},
        },
    }
}


def _parsed(value: Any) -> ImportJobCreate:
    """The request's fields as ImportJobCreate; a 422 like any other body that fails."""
    try:
        return ImportJobCreate.model_validate(value)
    except ValidationError as error:
        problems = [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        raise RequestValidationError(problems) from None


@router.post(
    "/projects/{project_id}/imports",
    response_model=DatasetJobOut,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=IMPORT_BODY,
    # An uploaded file past the configured size is refused whole.
    responses=documented(413),
)
async def start_import(
    project_id: int, request: Request, db: SessionDep, settings: SettingsDep, staff: ApiStaff
) -> DatasetJobOut:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_upload_bytes + FORM_OVERHEAD:
            # Refused before a byte of it is read.
            raise UploadTooLarge(
                f"the file is larger than the upload limit of {settings.max_upload_bytes:,} "
                "bytes; put it in the import folder and import it by name",
                field="file",
            )
        async with request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1) as form:
            upload = form.get("file")
            if upload is not None and not isinstance(upload, UploadFile):
                raise InvalidInput("'file' must be a file, not a text field", field="file")
            data = _parsed({key: value for key, value in form.items() if key != "file"})
            job = await run_in_threadpool(
                lambda: dataset_jobs.start_import_job(
                    db,
                    settings,
                    project_id,
                    acting=staff,
                    data=data,
                    upload=upload.file if upload is not None else None,
                    upload_name=upload.filename if upload is not None else None,
                )
            )
    elif content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
            ) from None
        data = _parsed(body)
        job = await run_in_threadpool(
            lambda: dataset_jobs.start_import_job(db, settings, project_id, acting=staff, data=data)
        )
    else:
        raise InvalidInput(
            "send the file as multipart/form-data (field 'file'), or JSON naming a file in the "
            "import folder",
            field="file",
        )
    return dataset_jobs.job_out(settings, job)


@router.post(
    "/projects/{project_id}/snapshots",
    response_model=DatasetJobOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def start_snapshot(
    project_id: int, data: SnapshotCreate, db: SessionDep, settings: SettingsDep, staff: ApiStaff
) -> DatasetJobOut:
    job = dataset_jobs.start_snapshot_job(db, settings, project_id, acting=staff, data=data)
    return dataset_jobs.job_out(settings, job)


@router.post(
    "/snapshots/{snapshot_id}/supersede",
    response_model=DatasetJobOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def start_supersede(
    snapshot_id: int, data: SnapshotCreate, db: SessionDep, settings: SettingsDep, staff: ApiStaff
) -> DatasetJobOut:
    old = snapshots.get_snapshot(db, snapshot_id)
    job = dataset_jobs.start_snapshot_job(
        db, settings, old.project_id, acting=staff, data=data, supersedes_id=old.id
    )
    return dataset_jobs.job_out(settings, job)


@router.get("/projects/{project_id}/dataset-jobs", response_model=list[DatasetJobOut])
@read_only
def list_dataset_jobs(
    project_id: int, db: SessionDep, settings: SettingsDep, _: ApiStaff, limit: JobLimit = 20
) -> list[DatasetJobOut]:
    return dataset_jobs.list_dataset_jobs(db, settings, project_id, limit=limit)


@router.get("/dataset-jobs/{dataset_job_id}", response_model=DatasetJobOut)
@read_only
def get_dataset_job(
    dataset_job_id: int, db: SessionDep, settings: SettingsDep, _: ApiStaff
) -> DatasetJobOut:
    return dataset_jobs.get_dataset_job(db, settings, dataset_job_id)


@router.get("/projects/{project_id}/snapshots", response_model=list[SnapshotOut])
@read_only
def list_snapshots(project_id: int, db: SessionDep, _: ApiStaff) -> list[SnapshotOut]:
    get_project_checked(db, project_id)
    return [SnapshotOut.model_validate(found) for found in snapshots.list_snapshots(db, project_id)]


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotOut)
@read_only
def get_snapshot(snapshot_id: int, db: SessionDep, _: ApiStaff) -> SnapshotOut:
    return SnapshotOut.model_validate(snapshots.get_snapshot(db, snapshot_id))


@router.get("/snapshots/{snapshot_id}/preview", response_model=SnapshotPreview)
@read_only
def preview_snapshot(
    snapshot_id: int,
    db: SessionDep,
    settings: SettingsDep,
    _: ApiStaff,
    split: common.Text = "train",
    limit: int = 20,
) -> SnapshotPreview:
    found = snapshots.get_snapshot(db, snapshot_id)
    rows = snapshots.preview_rows(settings, found, split, limit)
    return SnapshotPreview(snapshot_id=found.id, split=split, rows=rows)


@router.get(
    "/snapshots/{snapshot_id}/files/{name}",
    response_class=FileResponse,
    responses={200: {"content": {media: {} for media in sorted(set(SNAPSHOT_FILES.values()))}}},
)
def download_snapshot_file(
    snapshot_id: int, name: common.Text, db: SessionDep, settings: SettingsDep, _: ApiStaff
) -> FileResponse:
    path = dataset_jobs.snapshot_file(db, settings, snapshot_id, name)
    return FileResponse(path, media_type=SNAPSHOT_FILES[name], filename=name)


@router.post("/projects/{project_id}/exports/raw", response_model=ExportOut)
def export_raw(
    project_id: int, filters: SnapshotFilters, db: SessionDep, settings: SettingsDep, _: ApiStaff
) -> ExportOut:
    """Every judgement with its scores, ranks and flags, written at once under the data
    folder's exports/ (the same selection of the same labels is the same folder)."""
    return snapshots.export_judgements(db, settings, project_id, "raw", filters)


@router.post("/projects/{project_id}/exports/kto", response_model=ExportOut)
def export_kto(
    project_id: int, filters: SnapshotFilters, db: SessionDep, settings: SettingsDep, _: ApiStaff
) -> ExportOut:
    """One row per judged response with a desirable/undesirable label (TRL's KTO format),
    written at once under the data folder's exports/."""
    return snapshots.export_judgements(db, settings, project_id, "kto", filters)
