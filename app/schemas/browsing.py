"""The data browser's answers: a page of labels or prompts and the cursor of the next."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class LabelRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    id: int
    created_at: datetime
    task_id: int | None
    queue_id: int | None
    queue_name: str | None
    labeler: str | None
    source: str
    source_name: str
    prompt_id: int
    category: str
    # First lines of the prompt's first user turn.
    prompt_text: str
    # First lines of a comparison's comment, a demonstration's first turn or a skip's note.
    label_text: str
    flags: list[str]
    guideline_version: int | None
    gold: bool
    # A skip's: from the lease to the skip, less idle time.
    time_spent_seconds: float | None
    # The task's pairwise agreement (null: no task, or fewer than two labelers so far).
    task_agreement: float | None
    # kind "skip" only: the reason picked (label_text holds the note).
    skip_reason: str | None


class LabelPage(BaseModel):
    items: list[LabelRowOut]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: int | None


class PromptRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    category: str
    source: str
    prompt_text: str
    responses: int


class PromptRowPage(BaseModel):
    items: list[PromptRowOut]
    next_cursor: int | None
