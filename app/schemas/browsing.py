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
    # First lines of a comparison's comment or a demonstration's first turn.
    label_text: str
    flags: list[str]
    guideline_version: int | None
    gold: bool
    time_spent_seconds: float | None


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
