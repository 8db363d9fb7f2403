"""UltraFeedback-style rows: an `instruction` (or `prompt`) with `completions`, each with its
`model`, `response` and ratings. A completion's rating is its `overall_score`, else the mean
of its fine-grained annotation ratings (helpfulness, honesty, ...; "N/A" left out); ranks
follow the ratings, best first, equal ratings tied. A row that gives no comparison (one
completion, or fewer than two rated) is still imported, as a prompt and its responses, with a
warning that says so."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.datasets.formats.common import (
    RowProblem,
    category,
    field,
    listish,
    meta,
    prompt_turns,
    ranks_from_ratings,
    rating,
    text_value,
)
from app.datasets.records import Candidate, Record, RowError

NAME = "ultrafeedback"
COLUMNS = (("instruction", "completions"), ("prompt", "completions"))


def detect(first_rows: Sequence[dict[str, Any]]) -> bool:
    row = first_rows[0]
    return "completions" in row and ("instruction" in row or "prompt" in row)


def completion_rating(completion: dict[str, Any], what: str) -> float | None:
    overall = rating(completion.get("overall_score"), f"{what}'s overall_score")
    if overall is not None:
        return overall
    annotations = completion.get("annotations")
    if not isinstance(annotations, dict):
        return None
    found = []
    for aspect, annotation in sorted(annotations.items()):
        value = annotation.get("Rating") if isinstance(annotation, dict) else annotation
        number = rating(value, f"{what}'s {aspect} rating")
        if number is not None:
            found.append(number)
    return sum(found) / len(found) if found else None


def parse(row: dict[str, Any], line: int) -> list[Record]:
    instruction = row.get("instruction", row.get("prompt"))
    if instruction is None:
        raise RowProblem("the row has neither 'instruction' nor 'prompt'")
    prompt = prompt_turns(instruction, "the instruction")
    completions = listish(field(row, "completions"))
    if not isinstance(completions, list) or not completions:
        raise RowProblem("completions must be a non-empty list")
    contents, sources, ratings = [], [], []
    for position, completion in enumerate(completions, start=1):
        what = f"completion {position}"
        if not isinstance(completion, dict):
            raise RowProblem(f"{what} is not an object")
        model = completion.get("model")
        if model is not None:
            what = f"{what} ({model})"
        text = next(
            (completion[key] for key in ("response", "text", "content") if key in completion),
            None,
        )
        contents.append(text_value(text, f"{what}'s response"))
        sources.append(str(model or ""))
        ratings.append(completion_rating(completion, what))
    candidates = tuple(
        Candidate(content, source_name=source, rating=value, rank=rank)
        for content, source, value, rank in zip(
            contents, sources, ratings, ranks_from_ratings(ratings), strict=True
        )
    )
    warnings: tuple[RowError, ...] = ()
    if len(candidates) == 1:
        warnings = (RowError(line, "one completion, no comparison"),)
    elif sum(candidate.rank is not None for candidate in candidates) < 2:
        warnings = (RowError(line, "fewer than two completions are rated, no comparison"),)
    return [
        Record(
            line=line,
            prompt=prompt,
            candidates=candidates,
            category=category(row),
            meta=meta(row, "id", "source"),
            warnings=warnings,
        )
    ]
