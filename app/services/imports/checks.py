"""What makes a record storable, checked before a batch is stored: records from our readers
pass; these checks guard the service against any other caller. And the remarks a stored row
carries (a reader's, or a tie of a response with itself)."""

from __future__ import annotations

import math

from app.datasets.records import Record, RowError
from app.models import PromptCategory
from app.schemas.common import text_problem


def record_problem(record: Record) -> str | None:
    """Why a record cannot be stored, for records that did not come from our readers."""
    if not record.prompt or record.prompt[-1].role != "user":
        return "the prompt must end with a user turn"
    if any(turn.role == "system" for turn in record.prompt[1:]):
        return "a system message can only come first"
    if record.demonstration and record.demonstration[0].role != "assistant":
        return "a demonstration must start with an assistant turn"
    if record.category is not None and record.category not in {c.value for c in PromptCategory}:
        return f"unknown category {record.category!r}"
    texts = [turn.content for turn in (*record.prompt, *record.demonstration)]
    texts += [candidate.content for candidate in record.candidates]
    for text in texts:
        if not text.strip():
            return "empty text in the prompt, a demonstration or a response"
        problem = text_problem(text)
        if problem:
            return problem
    first_rank: dict[str, tuple[int, int | None]] = {}
    for position, candidate in enumerate(record.candidates, start=1):
        earlier = first_rank.setdefault(candidate.content, (position, candidate.rank))
        if earlier[1] != candidate.rank:
            return (
                f"responses {earlier[0]} and {position} are the same text ranked differently "
                "(a comparison of a response with itself)"
            )
    for candidate in record.candidates:
        if candidate.rank is not None and candidate.rank < 1:
            return f"rank {candidate.rank} is not 1 or more"
        if candidate.rating is not None and not math.isfinite(candidate.rating):
            return "a rating must be a finite number"
    return None


def record_warnings(record: Record) -> tuple[RowError, ...]:
    """The reader's remarks, and one more when a row's ranked responses are all one text (a
    tie of a response with itself): kept as one response, but there is nothing to compare."""
    ranked = [candidate for candidate in record.candidates if candidate.rank is not None]
    if len(ranked) >= 2 and len({candidate.content for candidate in ranked}) < 2:
        return (
            *record.warnings,
            RowError(record.line, "the ranked responses are one text; kept once, not compared"),
        )
    return record.warnings
