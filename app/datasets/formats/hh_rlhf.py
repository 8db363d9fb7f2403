"""Anthropic HH-RLHF rows: `chosen` and `rejected` are whole transcripts
("\\n\\nHuman: …\\n\\nAssistant: …"). They are split at their longest common prefix of whole
turns: the prompt must end with a Human turn and each side must add exactly one final
Assistant turn."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from app.datasets.formats.common import RowProblem, common_prefix, field, meta, text_value
from app.datasets.records import Candidate, Record, Turn

NAME = "hh-rlhf"
COLUMNS = (("chosen", "rejected"),)

_SPEAKER = re.compile(r"\n\n(Human|Assistant):[ ]?")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    chosen = row.get("chosen")
    return (
        "prompt" not in row
        and isinstance(chosen, str)
        and chosen.startswith("\n\nHuman:")
        and "\n\nAssistant:" in chosen
    )


def transcript(text: Any, what: str) -> tuple[Turn, ...]:
    if not isinstance(text, str):
        raise RowProblem(f"{what} must be a transcript (text), not {type(text).__name__}")
    pieces = _SPEAKER.split(text)
    if pieces[0].strip() or len(pieces) < 3:
        raise RowProblem(f"{what} must start with '\\n\\nHuman:'")
    # split() with one group gives [before, speaker, text, speaker, text, ...].
    return tuple(
        Turn(_ROLES[speaker], content)  # type: ignore[arg-type]
        for speaker, content in zip(pieces[1::2], pieces[2::2], strict=True)
    )


def parse(row: dict[str, Any], line: int) -> list[Record]:
    chosen = transcript(field(row, "chosen"), "chosen")
    rejected = transcript(field(row, "rejected"), "rejected")
    if chosen == rejected:
        raise RowProblem("chosen and rejected are the same transcript")
    shared = common_prefix(chosen, rejected)
    prompt = chosen[:shared]
    if (
        not prompt
        or prompt[-1].role != "user"
        or len(chosen) != shared + 1
        or len(rejected) != shared + 1
        or chosen[-1].role != "assistant"
        or rejected[-1].role != "assistant"
    ):
        raise RowProblem("the two transcripts do not share a prompt")
    for position, turn in enumerate(prompt, start=1):
        text_value(turn.content, f"turn {position} of the prompt")
    better = text_value(chosen[-1].content, "the chosen response")
    worse = text_value(rejected[-1].content, "the rejected response")
    return [
        Record(
            line=line,
            prompt=prompt,
            candidates=(Candidate(better, rank=1), Candidate(worse, rank=2)),
            meta=meta(row, "id"),
        )
    ]
