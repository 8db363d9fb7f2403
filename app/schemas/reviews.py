"""Reviews of labels, the task view and the review queue, as the JSON API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.models import ReviewVerdict
from app.schemas.common import Text

MAX_REASON = 2000


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: ReviewVerdict
    # Required (not blank) for a rejection: the labeler is shown it.
    reason: Text = Field(default="", max_length=MAX_REASON)


class ReviewRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    comparison_id: int | None
    demonstration_id: int | None
    verdict: ReviewVerdict
    reason: str
    reviewer_id: int
    reviewed_at: datetime


class SentBack(BaseModel):
    task_id: int
    # The task's overlap now: one more labeler than before.
    overlap: int


class ReviewQueueItem(BaseModel):
    comparison_id: int
    task_id: int
    labeler_id: int
    labeler: str
    time_spent_seconds: float | None
    # The task's pairwise agreement (null while fewer than two labelers ordered a pair).
    task_agreement: float | None
    # Why it was picked: "low agreement", "gold miss", "fast".
    reasons: list[str]


class ReviewQueuePage(BaseModel):
    items: list[ReviewQueueItem]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: int | None
