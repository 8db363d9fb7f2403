"""Plain prompts: a `prompt` (text or a conversation) or `messages` ending with a user turn,
with an optional `category` (InstructGPT's) and `id`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.datasets.formats.common import (
    RowProblem,
    category,
    is_conversation,
    listish,
    meta,
    prompt_turns,
)
from app.datasets.records import Record

NAME = "prompts"
COLUMNS = (("prompt",), ("messages",))


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    if "prompt" in row:
        return not {"chosen", "rejected", "completion", "completions"} & row.keys()
    messages = listish(row.get("messages"))
    return is_conversation(messages) and bool(messages) and messages[-1].get("role") == "user"


def parse(row: dict[str, Any], line: int) -> list[Record]:
    if row.get("prompt") is not None:
        prompt = prompt_turns(row["prompt"])
    elif row.get("messages") is not None:
        prompt = prompt_turns(row["messages"], "messages")
    else:
        raise RowProblem("the row has neither 'prompt' nor 'messages'")
    return [Record(line=line, prompt=prompt, category=category(row), meta=meta(row, "id"))]
