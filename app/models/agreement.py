"""Each comparison task's pairwise agreement, kept beside the task so that "agreement below x"
is an indexed condition rather than a computation over every comparison of the project.

The figure is the one app/services/agreement/metrics.py defines (pairwise_agreement_by per
task): over the response pairs of the task that two or more labelers ordered, agreeing labeler
pairs / labeler pairs. app/services/task_agreement.py keeps it up to date in the transaction of
every comparison submit; migration 0009 filled it for the comparisons made before.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Float, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class TaskAgreement(Base):
    __tablename__ = "task_agreements"
    __table_args__ = (
        CheckConstraint(
            "agreeing >= 0 AND agreeing <= labeler_pairs AND response_pairs >= 0",
            name="counts_consistent",
        ),
        # NULL exactly when no two labelers ordered the same response pair: no figure yet.
        CheckConstraint(
            "(labeler_pairs = 0 AND rate IS NULL) "
            "OR (labeler_pairs > 0 AND rate >= 0 AND rate <= 1)",
            name="rate_of_the_counts",
        ),
    )

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    agreeing: Mapped[int] = mapped_column(default=0)
    # (labeler, labeler, response pair) comparisons: the n of the rate.
    labeler_pairs: Mapped[int] = mapped_column(default=0)
    # Response pairs ordered by two or more labelers.
    response_pairs: Mapped[int] = mapped_column(default=0)
    # agreeing / labeler_pairs; indexed for "agreement below x".
    rate: Mapped[float | None] = mapped_column(Float, index=True)
