"""An admin's review of one label: accepted, or rejected with a reason.

A rejected label is kept as the labeler made it (the review says why it was rejected, and the
labeler sees that reason); snapshots leave it out unless asked to include it. One review per
label: reviewing again replaces the verdict, reason, reviewer and time.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, str_enum, utcnow


class ReviewVerdict(enum.StrEnum):
    accepted = "accepted"
    rejected = "rejected"


class LabelReview(Base):
    __tablename__ = "label_reviews"
    __table_args__ = (
        # Exactly one label: a comparison or a demonstration.
        CheckConstraint("(comparison_id IS NULL) <> (demonstration_id IS NULL)", name="one_label"),
        # A rejection always says why: the labeler is shown the reason.
        CheckConstraint(
            "verdict <> 'rejected' OR length(trim(reason)) > 0", name="rejection_has_reason"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), unique=True
    )
    demonstration_id: Mapped[int | None] = mapped_column(
        ForeignKey("demonstrations.id", ondelete="CASCADE"), unique=True
    )
    verdict: Mapped[ReviewVerdict] = mapped_column(str_enum(ReviewVerdict, "review_verdict"))
    reason: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
