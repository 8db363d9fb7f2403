"""The loop's own records: reward-model scores of responses, and side-by-side evaluations."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt


class ResponseScore(CreatedAt, Base):
    """A reward model's score of one response (its prompt with the response as the answer).

    Written by generation runs that use a reward model (best-of-N, choosing prompts by score
    gap) and by score runs; the audit view reads them against the labelers' consensus."""

    __tablename__ = "response_scores"

    response_id: Mapped[int] = mapped_column(
        ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True, index=True)
    # The run that computed it; a later run by the same model overwrites the score.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    score: Mapped[float] = mapped_column(Float)


class Evaluation(CreatedAt, Base):
    """A side-by-side human evaluation of model A (the candidate) against model B (the
    baseline) on held-out prompts: a generation run answers each prompt once with each model,
    and the answers become two-response tasks in the evaluation's own comparison queue."""

    __tablename__ = "evaluations"
    __table_args__ = (CheckConstraint("model_a_id <> model_b_id", name="two_different_models"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    model_a_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    model_b_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id"), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
