"""Training side: snapshots, registered models, runs and their metric history."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, UTCDateTime, str_enum


class SnapshotKind(enum.StrEnum):
    sft = "sft"
    preference = "preference"
    prompts = "prompts"


class ModelRole(enum.StrEnum):
    policy = "policy"
    reward = "reward"


class RunKind(enum.StrEnum):
    sft = "sft"
    reward = "reward"
    dpo = "dpo"
    ppo = "ppo"
    rloo = "rloo"
    grpo = "grpo"
    generate = "generate"
    # A reward model scores a project's judged responses, for the audit against labelers.
    score = "score"
    # A judge model labels a queue's or a snapshot's tasks (comparisons of source "ai").
    judge = "judge"
    # A model critiques and revises responses under a project's principles.
    critique = "critique"


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Snapshot(CreatedAt, Base):
    """An immutable, content-hashed export; superseded, never edited."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SnapshotKind] = mapped_column(str_enum(SnapshotKind, "snapshot_kind"))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    # {"train": n, "test": m}
    row_counts: Mapped[dict[str, int]] = mapped_column(JSONType)
    # Relative to the data folder.
    path: Mapped[str] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))


class Model(CreatedAt, Base):
    """A registered checkpoint: a local folder, a hub name, or a run's output."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("path IS NOT NULL OR hub_name IS NOT NULL", name="has_location"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[ModelRole] = mapped_column(str_enum(ModelRole, "model_role"))
    path: Mapped[str | None] = mapped_column(String(500))
    hub_name: Mapped[str | None] = mapped_column(String(200))
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Run(CreatedAt, Base):
    """A training or generation job. The database row, not the broker, is the source of truth."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_0_to_1"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_bounded"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        CheckConstraint(
            "base_model_id IS NOT NULL OR base_model_ref IS NOT NULL", name="has_base_model"
        ),
        Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[RunKind] = mapped_column(str_enum(RunKind, "run_kind"))
    status: Mapped[RunStatus] = mapped_column(
        str_enum(RunStatus, "run_status"), default=RunStatus.queued
    )
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    # A local folder or hub name when the base model is not registered.
    base_model_ref: Mapped[str | None] = mapped_column(String(500))
    reward_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    # The model this run registered, once it succeeded.
    output_model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), unique=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    worker_name: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # When its id was last sent to the workers again because the broker had lost the message
    # (app/services/resending.py); None when the first message was enough.
    resent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunMetric(CreatedAt, Base):
    """One logged row of a run's metrics (loss, learning rate, reward margins...) at a step."""

    __tablename__ = "run_metrics"
    __table_args__ = (CheckConstraint("step >= 0", name="step_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int]
    values: Mapped[dict[str, Any]] = mapped_column(JSONType)
