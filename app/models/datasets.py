"""Dataset jobs: an import or a snapshot export run in the background on the `default` queue.

The row is the job's truth (what was asked, who asked, how it ended); the broker only carries
its id. While an import runs, its live progress is kept outside the database (see
app/services/dataset_jobs.py for why); the row gets the final counts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, UTCDateTime, str_enum


class DatasetJobKind(enum.StrEnum):
    import_rows = "import"
    snapshot = "snapshot"


class DatasetJobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class DatasetJob(CreatedAt, Base):
    __tablename__ = "dataset_jobs"
    __table_args__ = (
        CheckConstraint("rows_done >= 0", name="rows_done_non_negative"),
        CheckConstraint("bytes_done >= 0", name="bytes_done_non_negative"),
        CheckConstraint("bytes_total IS NULL OR bytes_total >= 0", name="bytes_total_non_negative"),
        CheckConstraint("length(source_name) > 0", name="source_name_not_empty"),
        # Finished exactly when it succeeded or failed; a running job has started.
        CheckConstraint(
            "(status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)",
            name="finished_when_done",
        ),
        CheckConstraint("status <> 'running' OR started_at IS NOT NULL", name="running_started"),
        CheckConstraint("status <> 'failed' OR error IS NOT NULL", name="failure_has_error"),
        CheckConstraint("status <> 'succeeded' OR error IS NULL", name="success_has_no_error"),
        # Only a snapshot job that succeeded points at its snapshot, and it always does.
        CheckConstraint(
            "(snapshot_id IS NOT NULL) = (kind = 'snapshot' AND status = 'succeeded')",
            name="snapshot_when_snapshot_succeeded",
        ),
        CheckConstraint("upload_path IS NULL OR kind = 'import'", name="uploads_only_for_imports"),
        Index("ix_dataset_jobs_project_id_id", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[DatasetJobKind] = mapped_column(str_enum(DatasetJobKind, "dataset_job_kind"))
    status: Mapped[DatasetJobStatus] = mapped_column(
        str_enum(DatasetJobStatus, "dataset_job_status"), default=DatasetJobStatus.queued
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # What was asked: the ImportJobCreate or SnapshotCreate (plus supersedes_id) as JSON.
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The file name (or snapshot name) shown to people.
    source_name: Mapped[str] = mapped_column(String(500))
    # An uploaded file kept under the data folder until the job ends (relative to it).
    upload_path: Mapped[str | None] = mapped_column(String(500))
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    # An ImportResult, or the snapshot's SnapshotOut, as JSON.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When its id was last sent to the workers again because the broker had lost the message
    # (app/services/resending.py); None when the first message was enough.
    resent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
