"""SFT conversations: `messages` ending with assistant turn(s) (the prompt is everything up to
the last user turn, the demonstration what follows), or TRL's `prompt`/`completion`."""

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
    split_at_last_user,
    text_value,
    turns,
)
from app.datasets.records import Record, Turn

NAME = "sft"
COLUMNS = (("messages",), ("prompt", "completion"))


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    if "prompt" in row and "completion" in row:
        return True
    messages = listish(row.get("messages"))
    return is_conversation(messages) and bool(messages) and messages[-1].get("role") == "assistant"


def parse(row: dict[str, Any], line: int) -> list[Record]:
    if row.get("messages") is not None:
        conversation = turns(row["messages"], "messages")
        prompt, demonstration = split_at_last_user(conversation, "messages")
        if not demonstration:
            raise RowProblem("messages end with a user turn: there is no assistant answer")
    elif row.get("prompt") is not None and row.get("completion") is not None:
        prompt = prompt_turns(row["prompt"])
        completion = row["completion"]
        if isinstance(completion, str) and not is_conversation(completion):
            demonstration = (Turn("assistant", text_value(completion, "the completion")),)
        else:
            demonstration = turns(completion, "the completion")
    else:
        raise RowProblem("the row has neither 'messages' nor 'prompt' and 'completion'")
    if demonstration[0].role != "assistant":
        raise RowProblem("the demonstration must start with an assistant turn")
    return [
        Record(
            line=line,
            prompt=prompt,
            demonstration=demonstration,
            category=category(row),
            meta=meta(row, "id"),
        )
    ]
