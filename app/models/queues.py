"""Work supply: queues, their tasks, and assignments (a task leased to one labeler)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, UTCDateTime, str_enum, utcnow


class QueueKind(enum.StrEnum):
    demonstration = "demonstration"
    comparison = "comparison"


class SuggestionMode(enum.StrEnum):
    """Whether the workbench shows a judge's ranking of a comparison task (an AI comparison
    of the same task): never, only once the labeler has submitted (to measure agreement
    without anchoring), or before they rank."""

    off = "off"
    after = "after"
    before = "before"


class AssignmentStatus(enum.StrEnum):
    active = "active"
    submitted = "submitted"
    skipped = "skipped"
    expired = "expired"
    # Returned to the queue by an admin; the label it produced (if any) is kept.
    released = "released"
    # Judged under a guideline version an admin has since re-queued; its label is kept.
    superseded = "superseded"


class Queue(CreatedAt, Base):
    __tablename__ = "queues"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("max_overlap >= overlap", name="max_overlap_at_least_overlap"),
        CheckConstraint("lease_seconds > 0", name="lease_positive"),
        CheckConstraint("max_active_leases >= 1", name="max_active_leases_positive"),
        CheckConstraint(
            "disagreement_tau IS NULL OR (disagreement_tau >= -1 AND disagreement_tau <= 1)",
            name="disagreement_tau_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[QueueKind] = mapped_column(str_enum(QueueKind, "queue_kind"))
    overlap: Mapped[int] = mapped_column(default=1)
    # Adaptive overlap: a task whose rankings disagree (Kendall's tau below disagreement_tau)
    # asks for one more labeler, up to max_overlap.
    max_overlap: Mapped[int] = mapped_column(default=1)
    disagreement_tau: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[int] = mapped_column(default=0)
    lease_seconds: Mapped[int] = mapped_column(default=1800)
    max_active_leases: Mapped[int] = mapped_column(default=3)
    open_to_all: Mapped[bool] = mapped_column(Boolean, default=True)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    suggestion_mode: Mapped[SuggestionMode] = mapped_column(
        str_enum(SuggestionMode, "suggestion_mode"),
        default=SuggestionMode.off,
        server_default=SuggestionMode.off.value,
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class QueueLabeler(Base):
    """Who may work on a queue that is not open to all labelers."""

    __tablename__ = "queue_labelers"

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


# What the partial indexes below cover; queries that want them repeat these conditions.
HOLDS_SLOT = "status IN ('active', 'submitted')"
HAS_FREE_SLOT = "retired_at IS NULL AND held_slots < overlap"
IS_ACTIVE = "status = 'active'"


class Task(CreatedAt, Base):
    __tablename__ = "tasks"
    __table_args__ = (CheckConstraint("overlap >= 1", name="overlap_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    priority: Mapped[int] = mapped_column(default=0)
    # How many different labelers must complete it; starts at the queue's overlap and may grow.
    overlap: Mapped[int] = mapped_column(default=1)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    # The known answer of a gold task, e.g. {"ranking": [[12], [15, 16]]}.
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How many of its assignments are active or submitted, kept by triggers on assignments
    # (migration 0012) in the same transaction as the change; an active lease past its end
    # counts until leasing marks it expired.
    held_slots: Mapped[int] = mapped_column(default=0, server_default=text("0"))


# The tasks a lease may pick, in the order it picks them (app/services/leasing.py).
Index(
    "ix_tasks_open",
    Task.queue_id,
    Task.priority.desc(),
    Task.id,
    postgresql_where=text(HAS_FREE_SLOT),
    sqlite_where=text(HAS_FREE_SLOT),
)


class TaskResponse(Base):
    """The responses a comparison task shows, in their stored (not displayed) order."""

    __tablename__ = "task_responses"
    __table_args__ = (
        UniqueConstraint("task_id", "position"),
        CheckConstraint("position >= 0", name="position_non_negative"),
    )

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), primary_key=True)
    position: Mapped[int]


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (
        # One live assignment per task and labeler: never leased twice, never done twice.
        Index(
            "uq_assignments_task_labeler_live",
            "task_id",
            "labeler_id",
            unique=True,
            sqlite_where=text(HOLDS_SLOT),
            postgresql_where=text(HOLDS_SLOT),
        ),
        # Live leases only: expiring them and counting a labeler's reads no history.
        Index(
            "ix_assignments_active_expiry",
            "lease_expires_at",
            sqlite_where=text(IS_ACTIVE),
            postgresql_where=text(IS_ACTIVE),
        ),
        Index(
            "ix_assignments_active_labeler",
            "labeler_id",
            sqlite_where=text(IS_ACTIVE),
            postgresql_where=text(IS_ACTIVE),
        ),
        CheckConstraint("lease_expires_at > leased_at", name="lease_after_start"),
        CheckConstraint("idle_seconds >= 0", name="idle_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    labeler_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[AssignmentStatus] = mapped_column(
        str_enum(AssignmentStatus, "assignment_status"), default=AssignmentStatus.active
    )
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Display order of the task's responses for this labeler (shuffled per assignment).
    response_order: Mapped[list[int] | None] = mapped_column(JSONType)
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    skip_note: Mapped[str | None] = mapped_column(Text)
    idle_seconds: Mapped[float] = mapped_column(Float, default=0.0)
