"""The workbench's forms: what the page posts, read into the labeling schemas.

Field names use the letters the labeler sees (score_A, rank_B, flag_C …), never response ids,
so the page tells nothing about the responses beyond their text. The same values, as
{name: [values]}, are what an autosaved draft holds, so restoring a draft and re-showing a
refused form are one code path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from app.models import DemonstrationOrigin, Response
from app.schemas.labeling import (
    ComparisonSubmit,
    DemonstrationSubmit,
    ItemJudgement,
    Rewrite,
)

# Never part of a draft: the token belongs to the session, the key to the assignment.
NOT_DRAFTED = frozenset({"csrf_token", "idempotency_key"})
MAX_FIELDS = 400
MAX_VALUES = 60


class FormValues:
    """A form's values as lists per name, with the lookups the templates need."""

    def __init__(self, data: Mapping[str, Iterable[str]] | None = None) -> None:
        self._data: dict[str, list[str]] = {
            name: list(values) for name, values in (data or {}).items()
        }

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, Any]]) -> FormValues:
        data: dict[str, list[str]] = {}
        for name, value in pairs:
            if isinstance(value, str) and name != "csrf_token":
                data.setdefault(name, []).append(value)
        return cls(data)

    @classmethod
    def from_draft(cls, content: Mapping[str, Any] | None) -> FormValues | None:
        """The values a draft saved, or None when it holds something else."""
        form = (content or {}).get("form")
        if not isinstance(form, dict) or len(form) > MAX_FIELDS:
            return None
        data: dict[str, list[str]] = {}
        for name, values in form.items():
            if not isinstance(values, list) or len(values) > MAX_VALUES:
                return None
            if not all(isinstance(value, str) for value in values):
                return None
            if name not in NOT_DRAFTED:
                data[name] = values
        return cls(data)

    def get(self, name: str, default: str = "") -> str:
        values = self._data.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self._data.get(name, []))

    def checked(self, name: str, value: str = "on") -> bool:
        return value in self._data.get(name, [])

    def as_draft(self) -> dict[str, Any]:
        return {
            "form": {
                name: list(values) for name, values in self._data.items() if name not in NOT_DRAFTED
            }
        }

    def __bool__(self) -> bool:
        return bool(self._data)


T = TypeVar("T")


@dataclass
class Parsed(Generic[T]):
    data: T | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # Score/rank contradictions the labeler has not yet confirmed.
    warnings: list[str] = field(default_factory=list)


def letters(count: int) -> list[str]:
    return [chr(ord("A") + index) for index in range(count)]


def _idle(values: FormValues) -> str:
    return values.get("idle_seconds").strip() or "0"


def _schema_errors(error: ValidationError, names: Mapping[str, list[str]]) -> str:
    """Pydantic's complaints, with list positions named as the labeler knows them."""
    found = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = ""
        if len(location) >= 2 and isinstance(location[1], int):
            labels = names.get(str(location[0]), [])
            index = location[1]
            where = labels[index] if index < len(labels) else f"item {index + 1}"
            if len(location) > 2:
                where += f" ({str(location[2]).replace('_', ' ')})"
        elif location:
            where = str(location[0]).replace("_", " ")
        message = problem["msg"].removeprefix("Value error, ")
        found.append(f"{where}: {message}" if where else message)
    return "; ".join(dict.fromkeys(found))


# --- comparison -----------------------------------------------------------------------------


def parse_comparison(
    values: FormValues, responses: list[Response], flag_keys: list[str]
) -> Parsed[ComparisonSubmit]:
    result: Parsed[ComparisonSubmit] = Parsed()
    names = letters(len(responses))
    unacceptable = values.checked("all_unacceptable")
    scores: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for letter in names:
        raw = values.get(f"score_{letter}")
        if raw not in {str(score) for score in range(1, 8)}:
            result.errors[f"score_{letter}"] = f"Give {letter} a score from 1 to 7."
        else:
            scores[letter] = int(raw)
        flags = values.getlist(f"flag_{letter}")
        unknown = sorted(set(flags) - set(flag_keys))
        if unknown:
            result.errors[f"flag_{letter}"] = f"Unknown flag(s) for {letter}: {', '.join(unknown)}."
        if "other" in flags and not values.get(f"note_{letter}").strip():
            result.errors[f"note_{letter}"] = f"Say what “other” means for {letter}."
        rank = values.get(f"rank_{letter}").strip()
        if not unacceptable and rank:
            if rank.isdigit() and 1 <= int(rank) <= len(names):
                ranks[letter] = int(rank)
            else:
                result.errors[f"rank_{letter}"] = (
                    f"The place of {letter} must be a number from 1 to {len(names)}."
                )
    if not unacceptable and "rank" not in result.errors:
        missing = [letter for letter in names if letter not in ranks]
        if missing and not any(key.startswith("rank_") for key in result.errors):
            result.errors["rank"] = (
                "The ranking is incomplete: place "
                + ", ".join(missing)
                + " (or tick “All responses are unacceptable”)."
            )
    if result.errors:
        return result

    rewrites = []
    for letter, response in zip(names, responses, strict=True):
        text = values.get(f"rewrite_{letter}")
        if text.strip() and text.strip() != response.content.strip():
            rewrites.append((letter, Rewrite(response_id=response.id, content=text)))
    try:
        result.data = ComparisonSubmit(
            items=[
                ItemJudgement(
                    response_id=response.id,
                    score=scores[letter],
                    rank=None if unacceptable else ranks[letter],
                    flags=values.getlist(f"flag_{letter}"),
                    flag_note=values.get(f"note_{letter}"),
                )
                for letter, response in zip(names, responses, strict=True)
            ],
            all_unacceptable=unacceptable,
            comment=values.get("comment"),
            rewrites=[rewrite for _, rewrite in rewrites],
            idle_seconds=_idle(values),
        )
    except ValidationError as error:
        labels = {"items": names, "rewrites": [f"rewrite of {letter}" for letter, _ in rewrites]}
        result.errors["form"] = _schema_errors(error, labels)
        return result
    if not unacceptable and values.get("confirm_inconsistent") != "1":
        result.warnings = score_rank_conflicts(names, scores, ranks)
    return result


def score_rank_conflicts(
    names: list[str], scores: Mapping[str, int], ranks: Mapping[str, int]
) -> list[str]:
    """In the labeler's letters: a response placed above another but scored lower."""
    found = []
    for better in names:
        for worse in names:
            if ranks[better] < ranks[worse] and scores[better] < scores[worse]:
                found.append(
                    f"{better} is ranked above {worse} but scored lower "
                    f"({scores[better]} < {scores[worse]})."
                )
    return found


# --- demonstration --------------------------------------------------------------------------


def turn_roles(count: int) -> list[str]:
    """The written turns alternate, starting with the assistant's answer."""
    return ["assistant" if index % 2 == 0 else "user" for index in range(count)]


def written_turns(values: FormValues) -> list[str]:
    turns = values.getlist("turn")
    return turns or [""]


def parse_demonstration(
    values: FormValues, draft_response: Response | None
) -> Parsed[DemonstrationSubmit]:
    result: Parsed[DemonstrationSubmit] = Parsed()
    turns = written_turns(values)
    roles = turn_roles(len(turns))
    for index, (role, text) in enumerate(zip(roles, turns, strict=True)):
        if not text.strip():
            result.errors[f"turn_{index}"] = (
                "Write the assistant's answer."
                if index == 0
                else f"Write this {role} turn, or remove the pair."
            )
    if roles[-1] != "assistant":
        result.errors["form"] = "A demonstration ends with the assistant's turn."
    origin = values.get("origin", DemonstrationOrigin.written.value)
    if origin not in {item.value for item in DemonstrationOrigin}:
        result.errors["form"] = f"Unknown origin {origin[:40]!r}."
    elif origin == DemonstrationOrigin.edited_draft and draft_response is None:
        result.errors["form"] = "This task offers no model draft to start from."
    if result.errors:
        return result
    edited = origin == DemonstrationOrigin.edited_draft
    try:
        result.data = DemonstrationSubmit(
            messages=[
                {"role": role, "content": text} for role, text in zip(roles, turns, strict=True)
            ],
            origin=origin,
            # Which draft is the server's to say, never the page's.
            draft_response_id=draft_response.id if edited and draft_response else None,
            idle_seconds=_idle(values),
        )
    except ValidationError as error:
        labels = {"messages": [f"turn {index + 1}" for index in range(len(turns))]}
        result.errors["form"] = _schema_errors(error, labels)
    return result
