"""Labels: demonstrations, comparisons with per-response scores, and the pairs they yield."""

from __future__ import annotations

import enum
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
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, JSONType, str_enum
from app.models.queues import SuggestionMode


class LabelSource(enum.StrEnum):
    labeler = "labeler"
    imported = "import"
    # A model's judgement or revision (a judge run, a critique run): it names the model and the
    # run, and never counts towards a task's overlap of human labels or the labelers' agreement.
    ai = "ai"


class DemonstrationOrigin(enum.StrEnum):
    written = "written"
    edited_draft = "edited_draft"


def browsing_indexes(table: str) -> tuple[Index]:
    """For the data browser's newest-first pages (app/services/browsing.py): one labeler's
    labels read from their newest, not found by reading the whole table from its newest."""
    return (Index(f"ix_{table}_labeler_id_id", "labeler_id", "id"),)


class Demonstration(CreatedAt, Base):
    __tablename__ = "demonstrations"
    __table_args__ = (
        CheckConstraint(
            "source <> 'labeler' OR labeler_id IS NOT NULL", name="labeler_has_labeler"
        ),
        CheckConstraint("source <> 'ai' OR model_id IS NOT NULL", name="ai_has_model"),
        CheckConstraint(
            "origin <> 'edited_draft' OR draft_response_id IS NOT NULL",
            name="edited_draft_has_draft",
        ),
        CheckConstraint(
            "time_spent_seconds IS NULL OR time_spent_seconds >= 0", name="time_non_negative"
        ),
        *browsing_indexes("demonstrations"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), unique=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    labeler_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    source: Mapped[LabelSource] = mapped_column(str_enum(LabelSource, "demonstration_source"))
    source_name: Mapped[str] = mapped_column(String(200), default="")
    # For source "ai": the model that made the label and the run it was made in.
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    # The turns written after the prompt: the assistant's answer, and for a continued
    # conversation further user/assistant turns, as [{"role": ..., "content": ...}].
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    origin: Mapped[DemonstrationOrigin] = mapped_column(
        str_enum(DemonstrationOrigin, "demonstration_origin"),
        default=DemonstrationOrigin.written,
    )
    draft_response_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id"))
    # The response row the demonstration became, so it can be compared against model samples.
    response_id: Mapped[int | None] = mapped_column(ForeignKey("responses.id"))
    guideline_version_id: Mapped[int | None] = mapped_column(ForeignKey("guideline_versions.id"))
    time_spent_seconds: Mapped[float | None] = mapped_column(Float)
    # Client-chosen key so a retried submit never stores the label twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)


class Comparison(CreatedAt, Base):
    """One labeler's (or one imported) judgement of a task's responses."""

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint(
            "source <> 'labeler' OR labeler_id IS NOT NULL", name="labeler_has_labeler"
        ),
        CheckConstraint("source <> 'ai' OR model_id IS NOT NULL", name="ai_has_model"),
        CheckConstraint(
            "time_spent_seconds IS NULL OR time_spent_seconds >= 0", name="time_non_negative"
        ),
        # A suggestion is recorded with the AI comparison it showed, and never as "off".
        CheckConstraint(
            "(suggestion_mode IS NULL AND suggestion_comparison_id IS NULL) OR "
            "(suggestion_mode IN ('after', 'before') AND suggestion_comparison_id IS NOT NULL)",
            name="suggestion_recorded_whole",
        ),
        *browsing_indexes("comparisons"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"), unique=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    labeler_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    source: Mapped[LabelSource] = mapped_column(str_enum(LabelSource, "comparison_source"))
    source_name: Mapped[str] = mapped_column(String(200), default="")
    # For source "ai": the model that made the label and the run it was made in.
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    # For a generative judge's label: the judge template version it was asked with.
    judge_template_id: Mapped[int | None] = mapped_column(ForeignKey("judge_templates.id"))
    guideline_version_id: Mapped[int | None] = mapped_column(ForeignKey("guideline_versions.id"))
    # "All responses are unacceptable" (Open-Assistant's not_rankable): no ranking, no pairs.
    all_unacceptable: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Indexed for the review queue's "faster than N seconds" (app/services/review_queue.py).
    time_spent_seconds: Mapped[float | None] = mapped_column(Float, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A labeler's rewrite of a response is stored as its own two-item comparison
    # ("edited ≻ original", no task, so it stays out of agreement), linked to the comparison
    # it was made in.
    rewrite_in_comparison_id: Mapped[int | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    # A labeler's comparison of a task an AI comparison (a judge's) had ranked, on a queue that
    # shows suggestions: the mode it was made under ("after": shown once submitted, so the
    # label was not anchored by it; "before": shown while ranking) and that AI comparison.
    # Recorded at submit, never derived from the queue's current setting.
    suggestion_mode: Mapped[SuggestionMode | None] = mapped_column(
        str_enum(SuggestionMode, "comparison_suggestion_mode")
    )
    suggestion_comparison_id: Mapped[int | None] = mapped_column(
        ForeignKey("comparisons.id"), index=True
    )


class ComparisonItem(Base):
    """One response's score, rank and flags within a comparison. Ties share a rank."""

    __tablename__ = "comparison_items"
    __table_args__ = (
        CheckConstraint("score IS NULL OR (score >= 1 AND score <= 7)", name="score_1_to_7"),
        CheckConstraint("rank IS NULL OR rank >= 1", name="rank_positive"),
    )

    comparison_id: Mapped[int] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True
    )
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), primary_key=True)
    score: Mapped[int | None]
    # 1 is best; equal ranks are ties.
    rank: Mapped[int | None]
    # Keys from the project's label schema, e.g. ["hallucination"].
    flags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    flag_note: Mapped[str] = mapped_column(Text, default="")


class Pair(Base):
    """(prompt, winner, loser) for one ordered pair of a comparison's ranking; ties give none."""

    __tablename__ = "pairs"
    __table_args__ = (
        UniqueConstraint("comparison_id", "winner_response_id", "loser_response_id"),
        CheckConstraint("winner_response_id <> loser_response_id", name="distinct_responses"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    comparison_id: Mapped[int] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    winner_response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    loser_response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"))
    # Winner's score minus loser's, when both were scored.
    margin: Mapped[float | None] = mapped_column(Float)
