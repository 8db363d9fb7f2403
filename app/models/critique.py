"""AI feedback under written principles (Constitutional AI): a project's principles, and the
revisions a critique run made of responses under them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UTCDateTime

# At most one live version of a name in a project.
LIVE = "retired_at IS NULL"
# The source_name of a revision's response and of its "revision ≻ original" comparison (source
# "ai"): how snapshots tell revision pairs from a judge's labels.
REVISION_SOURCE_NAME = "critique-revision"


class Principle(CreatedAt, Base):
    """One version of a principle: a critique request and a revision request. Never edited in
    place: an edit stores a new version (previous_id names the one it replaces, which is
    retired), so every revision names the exact text it was made under."""

    __tablename__ = "principles"
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("length(name) > 0", name="name_not_empty"),
        Index(
            "uq_principles_project_id_live_name",
            "project_id",
            "name",
            unique=True,
            sqlite_where=text(LIVE),
            postgresql_where=text(LIVE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Asked after the response, e.g. "Identify ways the response is harmful…".
    critique_request: Mapped[str] = mapped_column(Text)
    # Asked after the critique, e.g. "Rewrite the response to remove anything harmful…".
    revision_request: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("principles.id"), unique=True)
    # Set when a newer version replaced it or it was removed; kept for the revisions made.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ResponseRevision(CreatedAt, Base):
    """A model response that is a critique run's revision of another response: the principle
    it was made under and the critique that led to it. The response itself (source model,
    naming the run and model, parent = the original) and its "revision ≻ original"
    comparison are ordinary rows."""

    __tablename__ = "response_revisions"
    __table_args__ = (
        CheckConstraint("response_id <> original_response_id", name="revises_another"),
    )

    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), primary_key=True)
    original_response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), index=True)
    principle_id: Mapped[int] = mapped_column(ForeignKey("principles.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    # The "revision ≻ original" comparison it came with.
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id"), unique=True)
    critique: Mapped[str] = mapped_column(Text)
