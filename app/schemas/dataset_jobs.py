"""Request and response shapes for dataset jobs: imports and snapshot exports run in the
background (rules: app/services/dataset_jobs.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models.datasets import DatasetJobKind, DatasetJobStatus
from app.schemas.common import Text
from app.schemas.imports import ErrorMode, ImportResult
from app.schemas.snapshots import SnapshotOut


class ImportJobCreate(BaseModel):
    """What to import and how. `name` is a file in the admin's import folder; leave it out when
    the file is uploaded with the request instead."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, max_length=1000)
    # None: recognised from the first rows.
    format: Text | None = Field(default=None, max_length=100)
    # "stop": the first bad row ends the import and nothing is kept; "skip": counted, listed.
    on_error: ErrorMode = "stop"
    # Recorded on every imported row; the file's name when not given.
    source: Text | None = Field(default=None, max_length=200)
    # Dialogue text (.txt) only: the filters that drop what is not a clean dialogue.
    min_turns: int = Field(default=2, ge=1, le=1000)
    max_turn_chars: int = Field(default=4000, ge=1, le=1_000_000)
    user_speaker: Literal["A", "B"] = "A"

    @field_validator("name", "format", "source")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        # An empty form field means "not given", as in the browser's import form.
        if value is None or not value.strip():
            return None
        return value.strip()


class DatasetJobOut(BaseModel):
    id: int
    project_id: int
    kind: DatasetJobKind
    status: DatasetJobStatus
    source_name: str
    rows_done: int
    bytes_done: int
    bytes_total: int | None
    # 0..1: from bytes read for imports; for snapshots only once done (their row total is not
    # known before they are written). None when not known.
    fraction: float | None
    # An import's ImportResult (also when a bad row stopped it), a snapshot job's snapshot.
    result: ImportResult | SnapshotOut | None
    error: str | None
    snapshot_id: int | None
    created_by_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # When its id was sent to the workers again because the broker had lost its message.
    resent_at: datetime | None


class SnapshotPreview(BaseModel):
    """The first rows of one split of a snapshot, as its JSONL file holds them."""

    snapshot_id: int
    split: str
    rows: list[dict[str, Any]]
