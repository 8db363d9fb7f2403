"""Datasets pages for staff: a project's snapshots, imports and dataset jobs; one snapshot's
manifest, files and preview.

Imports and snapshots run as background jobs (app/services/dataset_jobs.py): a form starts
one and comes back to the datasets page, where the job's row polls itself until it is done.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from app.datasets.formats import FORMAT_NAMES
from app.deps import SessionDep, SettingsDep, WebStaff, read_only
from app.errors import DomainError, InvalidInput
from app.models import Snapshot, SnapshotKind, User
from app.schemas import common
from app.schemas.dataset_jobs import ImportJobCreate
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services import dashboard, dataset_jobs, guidelines, queues, registry, snapshots, users
from app.services.dataset_jobs import SNAPSHOT_FILES, Enqueue, send_to_worker
from app.services.imports import list_import_files
from app.services.judging import templates as judge_templates
from app.services.prompts import get_project_checked
from app.services.snapshots.writers import SPLITS
from app.settings import Settings
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

PREVIEW_ROWS = 20
JOBS_SHOWN = 20
# Files offered from the import folder at most (a select of thousands helps nobody).
MAX_IMPORT_FILES = 500
ID_TOKEN = re.compile(r"^[0-9]{1,18}$")


def get_enqueue() -> Enqueue:
    """How a started job reaches a worker; page tests swap it for a recorder of sent ids."""
    return send_to_worker


EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]


# --- the forms ----------------------------------------------------------------------------

FormText = Annotated[common.Text, Field(max_length=1000)]
FormIds = Annotated[list[Annotated[common.Text, Field(max_length=40)]], Field(max_length=10_000)]


class SnapshotForm(BaseModel):
    """A snapshot form (new or supersede) as the browser sends it, all strings; checked when
    it becomes a SnapshotCreate. The page draws the form from it, so a refused form comes
    back as it was typed."""

    name: FormText = ""
    kind: FormText = ""
    source: FormText = ""
    # Preference only: "score_gap" for a margin column; empty is none.
    margin: FormText = ""
    queue_ids: FormIds = []
    guideline_version_ids: FormIds = []
    labeler_ids: FormIds = []
    created_from: FormText = ""
    created_to: FormText = ""
    min_agreement: FormText = ""
    # Checkboxes: "on" when ticked, absent when not.
    exclude_flagged: FormText = ""
    exclude_gold: FormText = ""
    include_rejected: FormText = ""
    include_ai_revisions: FormText = ""
    # Whose labels (SnapshotFilters.label_sources); empty fields take the defaults.
    label_sources: FormText = "human"
    judge_model_id: FormText = ""
    judge_template_id: FormText = ""
    human_weight: FormText = "1"
    ai_weight: FormText = "1"
    min_judge_agreement: FormText = ""
    test_fraction: FormText = "0.1"
    seed: FormText = "0"

    @classmethod
    def of(cls, snapshot: Snapshot) -> SnapshotForm:
        """A snapshot's own name and stored filters, to start a supersede form from."""
        stored = snapshot.filters

        def text(name: str, default: object = "") -> str:
            value = stored.get(name, default)
            return "" if value is None else str(value)

        return cls(
            name=snapshot.name,
            kind=snapshot.kind.value,
            source=text("source"),
            margin=text("margin"),
            queue_ids=[str(item) for item in stored.get("queue_ids", [])],
            guideline_version_ids=[str(item) for item in stored.get("guideline_version_ids", [])],
            labeler_ids=[str(item) for item in stored.get("labeler_ids", [])],
            created_from=text("created_from"),
            created_to=text("created_to"),
            min_agreement=text("min_agreement"),
            exclude_flagged="on" if stored.get("exclude_flagged") else "",
            exclude_gold="on" if stored.get("exclude_gold") else "",
            include_rejected="on" if stored.get("include_rejected") else "",
            include_ai_revisions="on" if stored.get("include_ai_revisions") else "",
            label_sources=text("label_sources", "human"),
            judge_model_id=text("judge_model_id"),
            judge_template_id=text("judge_template_id"),
            human_weight=text("human_weight", 1),
            ai_weight=text("ai_weight", 1),
            min_judge_agreement=text("min_judge_agreement"),
            test_fraction=text("test_fraction", 0.1),
            seed=text("seed", 0),
        )

    def snapshot(self, kind: str) -> SnapshotCreate:
        """InvalidInput or ValidationError naming the field at fault."""
        filters = SnapshotFilters.model_validate(
            {
                "queue_ids": _ids(self.queue_ids, "queue", "queue_ids"),
                "guideline_version_ids": _ids(
                    self.guideline_version_ids, "guideline version", "guideline_version_ids"
                ),
                "labeler_ids": _ids(self.labeler_ids, "user", "labeler_ids"),
                "created_from": _moment(self.created_from, "created_from"),
                "created_to": _moment(self.created_to, "created_to"),
                "min_agreement": self.min_agreement.strip() or None,
                "exclude_flagged": self.exclude_flagged == "on",
                "exclude_gold": self.exclude_gold == "on",
                "include_rejected": self.include_rejected == "on",
                "include_ai_revisions": self.include_ai_revisions == "on",
                "label_sources": self.label_sources.strip() or "human",
                "judge_model_id": self.judge_model_id.strip() or None,
                "judge_template_id": self.judge_template_id.strip() or None,
                "human_weight": self.human_weight.strip() or 1,
                "ai_weight": self.ai_weight.strip() or 1,
                "min_judge_agreement": self.min_judge_agreement.strip() or None,
                "test_fraction": self.test_fraction.strip(),
                "seed": self.seed.strip(),
            }
        )
        return SnapshotCreate.model_validate(
            {
                "name": self.name,
                "kind": kind.strip(),
                "source": self.source.strip() or None,
                "margin": self.margin.strip() or None,
                "filters": filters,
            }
        )


class ImportForm(BaseModel):
    """The import form's fields beside the uploaded file, as the browser sends them."""

    # A file in the import folder; empty when a file is uploaded instead.
    name: FormText = ""
    # Empty: recognise it.
    format: FormText = ""
    on_error: FormText = "stop"
    source: FormText = ""
    min_turns: FormText = "2"
    max_turn_chars: FormText = "4000"
    user_speaker: FormText = "A"


def _ids(values: list[str], what: str, field: str) -> list[int]:
    ids = []
    for token in values:
        if not ID_TOKEN.match(token):
            raise InvalidInput(f"{token[:20]!r} is not a {what} id", field=field)
        ids.append(int(token))
    return ids


def _moment(value: str, field: str) -> datetime | None:
    """A date (midnight UTC) or a date and time (UTC unless it names a zone)."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{value[:40]!r} is not a date like 2024-05-01 or 2024-05-01T12:00", field=field
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _errors(error: Exception) -> dict[str, str]:
    """Form errors by field; the service names filter fields `filters.x`, the form `x`."""
    return {key.removeprefix("filters."): value for key, value in form_errors(error).items()}


def _status(error: Exception) -> int:
    return error.status_code if isinstance(error, DomainError) else 422


# --- what the forms offer -----------------------------------------------------------------


def _choices(db: Session, project_id: int) -> dict[str, Any]:
    return {
        "queue_choices": queues.list_queues(db, project_id),
        "version_choices": guidelines.list_versions(db, project_id),
        "labeler_choices": dashboard.project_labelers(db, project_id),
        "judge_choices": registry.list_models(db, project_id),
        "template_choices": judge_templates.list_templates(db, project_id),
    }


def _filter_names(choices: dict[str, Any], usernames: dict[int, str]) -> dict[str, Any]:
    """What the id filters of a manifest name, as people know them."""
    return {
        "queue_ids": {queue.id: queue.name for queue in choices["queue_choices"]},
        "guideline_version_ids": {
            version.id: f"version {version.version}" for version in choices["version_choices"]
        },
        "labeler_ids": usernames,
    }


# A manifest's filters as the form words them, in the form's order; a key not listed (a
# filter added later) still shows, in words made from its key, after these.
FILTER_LABELS = {
    "source": "Preference rows from",
    "sources_in_words": "Labels from",
    "queue_ids": "Queues",
    "guideline_version_ids": "Guideline versions",
    "labeler_ids": "Labelers",
    "created_from": "Made from",
    "created_to": "Made before",
    "min_agreement": "Minimum agreement",
    "exclude_flagged": "Leave out judgements that flag a response",
    "exclude_gold": "Leave out gold tasks",
    "include_rejected": "Include labels an admin rejected",
    "include_ai_revisions": "Include AI revisions (critique runs)",
    "margin": "Margin column",
    "test_fraction": "Test fraction",
    "seed": "Seed",
    "label_sources": "Label sources",
    "judge_model_id": "Judge model",
    "judge_template_id": "Judge template",
    "human_weight": "Human rows written",
    "ai_weight": "AI rows written",
    "min_judge_agreement": "Agreement the judge needs on a category",
    "ai_categories": "Categories taken from the judge",
}


def filter_rows(filters: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(label, key, value) for each of a manifest's filters, labelled in words."""
    known = [key for key in FILTER_LABELS if key in filters]
    others = sorted(key for key in filters if key not in FILTER_LABELS)
    return [
        (FILTER_LABELS.get(key) or key.replace("_", " ").capitalize(), key, filters[key])
        for key in known + others
    ]


def _usernames(db: Session) -> dict[int, str]:
    return {user.id: user.username for user in users.list_users(db)}


# --- a project's datasets -----------------------------------------------------------------


def _datasets_page(
    request: Request,
    db: Session,
    settings: Settings,
    user: User,
    project_id: int,
    *,
    snapshot_form: SnapshotForm | None = None,
    import_form: ImportForm | None = None,
    snapshot_errors: dict[str, str] | None = None,
    import_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    return render(
        request,
        "datasets/page.html",
        {
            "project": project,
            "snapshots": snapshots.list_snapshots(db, project_id),
            "jobs": dataset_jobs.list_dataset_jobs(db, settings, project_id, limit=JOBS_SHOWN),
            "usernames": _usernames(db),
            "kinds": list(SnapshotKind),
            "formats": FORMAT_NAMES,
            "import_files": list_import_files(settings, MAX_IMPORT_FILES),
            "values": snapshot_form or SnapshotForm(kind=SnapshotKind.sft.value),
            "import_values": import_form or ImportForm(),
            "errors": snapshot_errors or {},
            "import_errors": import_errors or {},
            **_choices(db, project_id),
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/datasets")
@read_only
def datasets_page(
    request: Request, db: SessionDep, settings: SettingsDep, user: WebStaff, project_id: int
) -> Response:
    return _datasets_page(request, db, settings, user, project_id)


@router.post("/projects/{project_id}/datasets/snapshots")
def start_snapshot(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    enqueue: EnqueueDep,
    project_id: int,
    form: Annotated[SnapshotForm, Form()],
) -> Response:
    get_project_checked(db, project_id)
    try:
        data = form.snapshot(form.kind)
        job = dataset_jobs.start_snapshot_job(
            db, settings, project_id, acting=user, data=data, enqueue=enqueue
        )
    except (ValidationError, DomainError) as error:
        return _datasets_page(
            request,
            db,
            settings,
            user,
            project_id,
            snapshot_form=form,
            snapshot_errors=_errors(error),
            status_code=_status(error),
        )
    return redirect(
        request,
        f"/projects/{project_id}/datasets#job-{job.id}",
        notice=f"Started snapshot job {job.id}: {data.name}.",
    )


@router.post("/projects/{project_id}/datasets/imports")
def start_import(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    enqueue: EnqueueDep,
    project_id: int,
    form: Annotated[ImportForm, Form()],
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    get_project_checked(db, project_id)
    # A form sent without choosing a file carries an empty part with no name.
    upload = file if file is not None and file.filename else None
    try:
        job = dataset_jobs.start_import_job(
            db,
            settings,
            project_id,
            acting=user,
            data=ImportJobCreate.model_validate(form.model_dump()),
            upload=upload.file if upload is not None else None,
            upload_name=upload.filename if upload is not None else None,
            enqueue=enqueue,
        )
    except (ValidationError, DomainError) as error:
        return _datasets_page(
            request,
            db,
            settings,
            user,
            project_id,
            import_form=form,
            import_errors=_errors(error),
            status_code=_status(error),
        )
    return redirect(
        request,
        f"/projects/{project_id}/datasets#job-{job.id}",
        notice=f"Started import job {job.id}: {job.source_name}.",
    )


@router.get("/dataset-jobs/{dataset_job_id}/row")
@read_only
def job_row(
    request: Request, db: SessionDep, settings: SettingsDep, user: WebStaff, dataset_job_id: int
) -> Response:
    """One job's row of the datasets page, which polls it while the job runs."""
    job = dataset_jobs.get_dataset_job(db, settings, dataset_job_id)
    return render(
        request,
        "datasets/page.html",
        {"job": job, "usernames": _usernames(db)},
        block="job_row",
        user=user,
        no_store=True,
    )


# --- one snapshot -------------------------------------------------------------------------


def _preview(settings: Settings, snapshot: Snapshot, split: str) -> dict[str, Any]:
    """The first rows of a split; a split that is not there, or files gone from the data
    folder, are said in the preview's place."""
    try:
        rows = snapshots.preview_rows(settings, snapshot, split, PREVIEW_ROWS)
    except DomainError as error:
        return {"split": split, "rows": [], "error": error.message}
    return {"split": split, "rows": rows, "error": None}


def _snapshot_page(
    request: Request,
    db: Session,
    settings: Settings,
    user: User,
    snapshot_id: int,
    *,
    split: str = "train",
    form: SnapshotForm | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    snapshot = snapshots.get_snapshot(db, snapshot_id)
    siblings = snapshots.list_snapshots(db, snapshot.project_id)
    supersedes = next((other for other in siblings if other.superseded_by_id == snapshot.id), None)
    choices = _choices(db, snapshot.project_id)
    usernames = _usernames(db)
    return render(
        request,
        "datasets/snapshot.html",
        {
            "project": get_project_checked(db, snapshot.project_id),
            "snapshot": snapshot,
            "supersedes": supersedes,
            "filter_rows": filter_rows(snapshot.filters),
            "usernames": usernames,
            "files": list(SNAPSHOT_FILES),
            "preview": _preview(settings, snapshot, split),
            "splits": SPLITS,
            "values": form or SnapshotForm.of(snapshot),
            "errors": errors or {},
            "names": _filter_names(choices, usernames),
            **choices,
        },
        user=user,
        status_code=status_code,
    )


SplitQuery = Annotated[common.Text, Query(max_length=10)]


@router.get("/snapshots/{snapshot_id}")
@read_only
def snapshot_page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    snapshot_id: int,
    split: SplitQuery = "train",
) -> Response:
    return _snapshot_page(request, db, settings, user, snapshot_id, split=split)


@router.get("/snapshots/{snapshot_id}/preview")
@read_only
def snapshot_preview(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    snapshot_id: int,
    split: SplitQuery = "train",
) -> Response:
    """The preview alone, swapped in when the split is toggled."""
    snapshot = snapshots.get_snapshot(db, snapshot_id)
    return render(
        request,
        "datasets/snapshot.html",
        {"snapshot": snapshot, "splits": SPLITS, "preview": _preview(settings, snapshot, split)},
        block="preview",
        user=user,
    )


@router.get("/snapshots/{snapshot_id}/files/{name}")
def snapshot_file(
    db: SessionDep, settings: SettingsDep, _: WebStaff, snapshot_id: int, name: common.Text
) -> FileResponse:
    path = dataset_jobs.snapshot_file(db, settings, snapshot_id, name)
    return FileResponse(path, media_type=SNAPSHOT_FILES[name], filename=name)


@router.post("/snapshots/{snapshot_id}/supersede")
def supersede_snapshot(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    enqueue: EnqueueDep,
    snapshot_id: int,
    form: Annotated[SnapshotForm, Form()],
) -> Response:
    old = snapshots.get_snapshot(db, snapshot_id)
    try:
        data = form.snapshot(old.kind.value)
        job = dataset_jobs.start_snapshot_job(
            db,
            settings,
            old.project_id,
            acting=user,
            data=data,
            supersedes_id=old.id,
            enqueue=enqueue,
        )
    except (ValidationError, DomainError) as error:
        return _snapshot_page(
            request,
            db,
            settings,
            user,
            snapshot_id,
            form=form,
            errors=_errors(error),
            status_code=_status(error),
        )
    return redirect(
        request,
        f"/projects/{old.project_id}/datasets#job-{job.id}",
        notice=f"Started snapshot job {job.id}: {data.name}, to supersede snapshot {old.id}.",
    )
