"""What the labeler's workbench keeps between requests: drafts and which guideline was read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, UTCDateTime, utcnow


class Draft(CreatedAt, Base):
    """Work in progress on a task, saved while the labeler types.

    Keyed by task and labeler rather than by assignment, so a draft outlives an expired lease
    and is found again when the same labeler leases the task anew. Deleted when the label it
    became is stored."""

    __tablename__ = "drafts"
    __table_args__ = (CheckConstraint("revision >= 1", name="revision_positive"),)

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    labeler_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # The assignment it was last saved under.
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    # The page's state as the client sends it: a demonstration's turns, or a comparison's
    # scores, ranking, flags, comment and rewrites. Validated only on submit.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Grows by one per save, so a client can tell that another tab saved in between.
    revision: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GuidelineRead(Base):
    """The guideline version a user last opened in a project, for the 'it changed' banner."""

    __tablename__ = "guideline_reads"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    guideline_version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id"))
    read_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
