"""Celery task lifecycle events, recorded by signal handlers in web and worker processes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow


class TaskEvent(Base):
    """One step of one task: sent, started, succeeded, failed, retried or revoked.

    Not foreign keys to runs or dataset jobs: events outlive what they are about, and a
    recording must never fail on a row that was just deleted."""

    __tablename__ = "task_events"
    __table_args__ = (Index("ix_task_events_task_name_state", "task_name", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), index=True)
    task_name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    hostname: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(Integer)
    dataset_job_id: Mapped[int | None] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
