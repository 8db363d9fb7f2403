"""TRL preference rows: `prompt`/`chosen`/`rejected` as plain text or conversations, or
without a prompt (implicit): `chosen` and `rejected` as whole conversations that share the
prompt and differ in their last assistant turn. `score_chosen`/`score_rejected` (as in
UltraFeedback-binarized) are kept as ratings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.datasets.formats.common import (
    RowProblem,
    category,
    common_prefix,
    is_conversation,
    meta,
    prompt_turns,
    rating,
    response_text,
    turns,
)
from app.datasets.records import Candidate, Record, Turn

NAME = "preference"
COLUMNS = (("chosen", "rejected"),)


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    if not {"chosen", "rejected"} <= row.keys():
        return False
    return "prompt" in row or is_conversation(row["chosen"])


def parse(row: dict[str, Any], line: int) -> list[Record]:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if chosen is None or rejected is None:
        raise RowProblem(f"the row has no '{'chosen' if chosen is None else 'rejected'}'")
    if row.get("prompt") is not None:
        prompt = prompt_turns(row["prompt"])
        better = response_text(chosen, "the chosen response")
        worse = response_text(rejected, "the rejected response")
    else:
        prompt, better, worse = implicit(chosen, rejected)
    candidates = (
        Candidate(better, rating=rating(row.get("score_chosen"), "score_chosen"), rank=1),
        Candidate(worse, rating=rating(row.get("score_rejected"), "score_rejected"), rank=2),
    )
    return [
        Record(
            line=line,
            prompt=prompt,
            candidates=candidates,
            category=category(row),
            meta=meta(row, "id"),
        )
    ]


def implicit(chosen: Any, rejected: Any) -> tuple[tuple[Turn, ...], str, str]:
    if not (is_conversation(chosen) and is_conversation(rejected)):
        raise RowProblem("without a 'prompt', chosen and rejected must be conversations")
    better = turns(chosen, "chosen")
    worse = turns(rejected, "rejected")
    shared = common_prefix(better, worse)
    prompt = better[:shared]
    if (
        not prompt
        or prompt[-1].role != "user"
        or len(better) != shared + 1
        or len(worse) != shared + 1
        or better[-1].role != "assistant"
        or worse[-1].role != "assistant"
    ):
        raise RowProblem("chosen and rejected do not share a prompt")
    return prompt, better[-1].content, worse[-1].content
