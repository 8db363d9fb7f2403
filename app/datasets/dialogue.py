"""Raw dialogue text in the `[A]: …` / `[B]: …` form (as in DeepMind's Gopher dialogue
data): dialogues are separated by blank lines, a turn starts at a line `[A]:` or `[B]:` and
runs on over the lines that follow. Heuristic filters drop what does not look like a clean
two-party dialogue, and a FilterReport counts what each dropped.

A is the user and B the assistant (or the other way round): a dialogue ending with the
assistant gives a prompt and the assistant's last turn as a demonstration; one ending with
the user gives a prompt alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import BinaryIO

from app.datasets.files import MAX_ROW_BYTES, decode_line, megabytes, physical_lines
from app.datasets.records import Record, RowError, Turn
from app.schemas.common import text_problem

_TURN = re.compile(r"\[([A-Za-z])\]:[ \t]?(.*)")
# The filters in the order they are tried; a dropped dialogue counts under the first it fails.
FILTERS = (
    "text_outside_turns",
    "unknown_speaker",
    "empty_turn",
    "too_few_turns",
    "turn_too_long",
    "not_alternating",
    "one_speaker",
)


@dataclass(frozen=True)
class DialogueFilters:
    min_turns: int = 2
    max_turn_chars: int = 4000
    # "A": [A] is the user and [B] the assistant; "B": the other way round.
    user_speaker: str = "A"


@dataclass
class FilterReport:
    dialogues: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTERS, 0))


@dataclass
class _Dialogue:
    line: int
    turns: list[tuple[str, list[str]]] = field(default_factory=list)
    outside: bool = False


def _failed_filter(dialogue: _Dialogue, filters: DialogueFilters) -> str | None:
    if dialogue.outside:
        return "text_outside_turns"
    if any(speaker not in "AB" for speaker, _ in dialogue.turns):
        return "unknown_speaker"
    texts = ["\n".join(lines).strip() for _, lines in dialogue.turns]
    if any(not text for text in texts):
        return "empty_turn"
    if len(dialogue.turns) < filters.min_turns:
        return "too_few_turns"
    if any(len(text) > filters.max_turn_chars for text in texts):
        return "turn_too_long"
    speakers = [speaker for speaker, _ in dialogue.turns]
    if any(first == second for first, second in pairwise(speakers)):
        return "not_alternating"
    if len(set(speakers)) < 2:
        return "one_speaker"
    return None


def _record(dialogue: _Dialogue, filters: DialogueFilters) -> Record | RowError:
    turns = tuple(
        Turn("user" if speaker == filters.user_speaker else "assistant", "\n".join(lines).strip())
        for speaker, lines in dialogue.turns
    )
    for turn in turns:
        problem = text_problem(turn.content)
        if problem:
            return RowError(dialogue.line, problem)
    # The filters let through only dialogues where both speakers talk, so a user turn exists.
    last_user = max(i for i, turn in enumerate(turns) if turn.role == "user")
    return Record(
        line=dialogue.line,
        prompt=turns[: last_user + 1],
        demonstration=turns[last_user + 1 :],
    )


def read_dialogues(
    stream: BinaryIO,
    filters: DialogueFilters,
    report: FilterReport,
    *,
    limit: int = MAX_ROW_BYTES,
) -> Iterator[Record | RowError]:
    """Records for the dialogues that pass every filter; `report` counts as it goes. A line
    that is not UTF-8 or too long is a RowError, and its dialogue is not used."""
    if filters.user_speaker not in ("A", "B"):
        raise ValueError("user_speaker must be 'A' or 'B'")
    current: _Dialogue | None = None
    broken: RowError | None = None

    def finish() -> Iterator[Record | RowError]:
        if current is None:
            return
        report.dialogues += 1
        if broken is not None:
            yield broken
            return
        failed = _failed_filter(current, filters)
        if failed:
            report.dropped[failed] += 1
            return
        report.kept += 1
        yield _record(current, filters)

    for line, raw in physical_lines(stream, limit):
        if isinstance(raw, int):
            text: str | RowError = RowError(
                line, f"the line is {megabytes(raw)}, over the limit of {megabytes(limit)}"
            )
        else:
            text = decode_line(raw, line)
        if isinstance(text, RowError):
            current = current or _Dialogue(line)
            broken = broken or text
            continue
        text = text.rstrip("\r\n")
        if not text.strip():
            yield from finish()
            current, broken = None, None
            continue
        if current is None:
            current = _Dialogue(line)
        turn = _TURN.match(text)
        if turn:
            current.turns.append((turn.group(1).upper(), [turn.group(2)]))
        elif current.turns:
            current.turns[-1][1].append(text)
        else:
            current.outside = True
    yield from finish()
