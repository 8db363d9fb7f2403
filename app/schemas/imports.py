"""What a dataset import reports: counts of what it stored, the rows it skipped (the first
few with their line and reason), and whether it stopped at a bad row (then nothing is kept)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

ErrorMode = Literal["skip", "stop"]


class ImportRowError(BaseModel):
    line: int
    reason: str


class ImportProgress(BaseModel):
    rows_read: int
    records_imported: int
    skipped: int


class DialogueFilterReport(BaseModel):
    """For dialogue text: how many dialogues were read, kept, and dropped by each filter."""

    dialogues: int
    kept: int
    dropped: dict[str, int]


class ImportResult(BaseModel):
    source: str
    format: str | None = None
    rows_read: int = 0
    records_imported: int = 0
    prompts_created: int = 0
    prompts_reused: int = 0
    responses: int = 0
    demonstrations: int = 0
    comparisons: int = 0
    pairs: int = 0
    # Responses not stored twice: the same text under the same prompt became one response.
    responses_merged: int = 0
    # Every row read is one of: imported as it was; merged (nothing new was kept: a repeat of
    # a row this import, or an earlier import from the same source, stored; or a row without
    # a comparison or demonstration whose prompt and responses the project already has);
    # imported with a warning; or skipped.
    # rows_read = rows_imported + rows_merged + rows_warned + skipped. For Open-Assistant
    # flat exports a row is a message; for dialogue text a row is a dialogue, and those the
    # filters dropped are counted in `filters` (by filter) rather than here.
    rows_imported: int = 0
    rows_merged: int = 0
    rows_warned: int = 0
    skipped: int = 0
    # Of the skipped rows, those the source itself deleted (Open-Assistant messages removed by
    # its moderators, with their replies): counted here, not listed in `errors`.
    skipped_deleted: int = 0
    # The first few skipped rows; `skipped` counts them all.
    errors: list[ImportRowError] = []
    # The first few remarks on rows imported with a warning; `rows_warned` counts the rows.
    warnings: list[ImportRowError] = []
    # True when a bad row stopped the import (on_error "stop"): nothing was stored.
    stopped: bool = False
    stop_error: ImportRowError | None = None
    filters: DialogueFilterReport | None = None
