"""What the format modules share: reading turns and text out of a row, and the error a bad row
raises (turned into a RowError with the row's line by the caller)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app.datasets.records import Candidate, Record, Turn
from app.models.content import PromptCategory
from app.schemas.prompts import MAX_CONTENT_LENGTH

ROLES = ("system", "user", "assistant")
CATEGORIES = tuple(category.value for category in PromptCategory)


class RowProblem(Exception):
    """A row that cannot become a record; the message is the reason shown to people. `line`
    names the row at fault when it is not the one being parsed (a tree spread over rows)."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.line = line


def field(row: dict[str, Any], name: str) -> Any:
    if name not in row or row[name] is None:
        raise RowProblem(f"the row has no '{name}'")
    return row[name]


def text_value(value: Any, what: str) -> str:
    if value is None:
        raise RowProblem(f"{what} is missing")
    if not isinstance(value, str):
        raise RowProblem(f"{what} must be text, not {type(value).__name__}")
    if not value.strip():
        raise RowProblem(f"{what} is empty")
    if len(value) > MAX_CONTENT_LENGTH:
        raise RowProblem(
            f"{what} is {len(value):,} characters, over the limit of {MAX_CONTENT_LENGTH:,}"
        )
    return value


def listish(value: Any) -> Any:
    """A CSV cell holding a JSON list (e.g. a `messages` column) becomes that list."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def is_conversation(value: Any) -> bool:
    value = listish(value)
    return isinstance(value, list) and all(
        isinstance(item, dict) and "role" in item for item in value
    )


def turns(value: Any, what: str) -> tuple[Turn, ...]:
    """A conversation: a non-empty list of {"role", "content"} with a system turn only first."""
    value = listish(value)
    if not isinstance(value, list) or not value:
        raise RowProblem(f"{what} must be a non-empty list of messages")
    found = []
    for position, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise RowProblem(f"{what}: message {position} is not an object")
        role = message.get("role")
        if role not in ROLES:
            raise RowProblem(
                f"{what}: message {position} has role {role!r}, not one of {', '.join(ROLES)}"
            )
        if role == "system" and position > 1:
            raise RowProblem(f"{what}: a system message can only come first")
        content = text_value(message.get("content"), f"{what}: message {position}'s content")
        found.append(Turn(role, content))
    return tuple(found)


def prompt_turns(value: Any, what: str = "the prompt") -> tuple[Turn, ...]:
    """A prompt: plain text (one user turn) or a conversation ending with a user turn."""
    if isinstance(value, str) and not is_conversation(value):
        return (Turn("user", text_value(value, what)),)
    if not isinstance(value, str | list):
        raise RowProblem(f"{what} must be text or a list of messages, not {type(value).__name__}")
    found = turns(value, what)
    if found[-1].role != "user":
        raise RowProblem(f"{what} must end with a user turn")
    return found


def response_text(value: Any, what: str) -> str:
    """One response: plain text, or a conversation of exactly one assistant turn."""
    if isinstance(value, str) and not is_conversation(value):
        return text_value(value, what)
    found = turns(value, what)
    if len(found) != 1 or found[0].role != "assistant":
        raise RowProblem(f"{what} must be one assistant turn")
    return found[0].content


def split_at_last_user(conversation: Sequence[Turn], what: str) -> tuple[tuple[Turn, ...], ...]:
    last_user = max((i for i, turn in enumerate(conversation) if turn.role == "user"), default=-1)
    if last_user < 0:
        raise RowProblem(f"{what} has no user turn")
    return tuple(conversation[: last_user + 1]), tuple(conversation[last_user + 1 :])


def common_prefix(first: Sequence[Turn], second: Sequence[Turn]) -> int:
    length = 0
    for one, other in zip(first, second, strict=False):
        if one != other:
            break
        length += 1
    return length


def category(row: dict[str, Any]) -> str | None:
    value = row.get("category")
    if value is None or value == "":
        return None
    if value not in CATEGORIES:
        raise RowProblem(f"unknown category {value!r}; use one of {', '.join(CATEGORIES)}")
    return str(value)


def meta(row: dict[str, Any], *names: str) -> dict[str, str]:
    return {name: str(row[name]) for name in names if row.get(name) not in (None, "")}


def rating(value: Any, what: str) -> float | None:
    """A number, or text holding one (CSV); None for missing or "N/A"."""
    if value is None or (isinstance(value, str) and value.strip().upper() in ("", "N/A")):
        return None
    if isinstance(value, bool):
        raise RowProblem(f"{what} must be a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RowProblem(f"{what} must be a number, not {value!r}") from None


def ranks_from_ratings(ratings: Sequence[float | None]) -> list[int | None]:
    """Higher rating ranks first; equal ratings tie; unrated candidates stay unranked."""
    levels = sorted({value for value in ratings if value is not None}, reverse=True)
    position = {value: index for index, value in enumerate(levels, start=1)}
    return [None if value is None else position[value] for value in ratings]


def judged(
    line: int, prompt: tuple[Turn, ...], candidates: Sequence[Candidate], **extra: Any
) -> Record:
    return Record(line=line, prompt=prompt, candidates=tuple(candidates), **extra)
