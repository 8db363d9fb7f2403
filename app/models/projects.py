"""Projects and their versioned guidelines."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, UTCDateTime, utcnow


class Project(CreatedAt, Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(
            "cost_per_demonstration IS NULL OR cost_per_demonstration >= 0",
            name="cost_per_demonstration_non_negative",
        ),
        CheckConstraint(
            "cost_per_comparison IS NULL OR cost_per_comparison >= 0",
            name="cost_per_comparison_non_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # {"flags": [{"key": "hallucination", "label": "Hallucination / made-up facts"}, ...]}
    label_schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    is_archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # What one label costs (any currency), for spend and cost-per-usable-pair on the dashboard.
    cost_per_demonstration: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    cost_per_comparison: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class GuidelineVersion(CreatedAt, Base):
    """One immutable version of a project's guideline; every label records the one it used."""

    __tablename__ = "guideline_versions"
    __table_args__ = (
        UniqueConstraint("project_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    version: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
