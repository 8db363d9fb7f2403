"""Storing a batch of records with bulk inserts: prompts (deduplicated by content hash within
the project), responses, demonstrations, and for ranked candidates an imported comparison
with its items and pairs. The caller owns the transaction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.datasets.records import Record, Turn
from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    LabelSource,
    Pair,
    Prompt,
    PromptCategory,
    Response,
    ResponseSource,
)
from app.schemas.common import text_problem
from app.services.imports.bulk import bulk_insert, inserted_ids
from app.services.pairs import RankedResponse, dense_ranks, expand_pairs
from app.services.prompts import prompt_content_hash


@dataclass
class Counts:
    records: int = 0
    prompts_created: int = 0
    prompts_reused: int = 0
    responses: int = 0
    demonstrations: int = 0
    comparisons: int = 0
    pairs: int = 0


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
    for candidate in record.candidates:
        if candidate.rank is not None and candidate.rank < 1:
            return f"rank {candidate.rank} is not 1 or more"
        if candidate.rating is not None and not math.isfinite(candidate.rating):
            return "a rating must be a finite number"
    return None


def _messages(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    return [{"role": turn.role, "content": turn.content} for turn in turns]


def _prompt_ids(
    db: Session,
    project_id: int,
    batch: Sequence[Record],
    source: str,
    acting_id: int | None,
    counts: Counts,
) -> list[int]:
    messages = [_messages(record.prompt) for record in batch]
    hashes = [prompt_content_hash(turns) for turns in messages]
    found = db.execute(
        select(Prompt.content_hash, func.min(Prompt.id))
        .where(Prompt.project_id == project_id, Prompt.content_hash.in_(sorted(set(hashes))))
        .group_by(Prompt.content_hash)
    )
    known: dict[str, int] = {content_hash: prompt_id for content_hash, prompt_id in found}
    new: dict[str, dict[str, Any]] = {}
    for record, turns, content_hash in zip(batch, messages, hashes, strict=True):
        if content_hash not in known and content_hash not in new:
            new[content_hash] = {
                "project_id": project_id,
                "messages": turns,
                "category": PromptCategory(record.category or "other"),
                "source": f"import:{source}"[:200],
                "content_hash": content_hash,
                "created_by_id": acting_id,
            }
    known.update(zip(new, inserted_ids(db, Prompt.__table__, list(new.values())), strict=True))
    counts.prompts_created += len(new)
    counts.prompts_reused += len(batch) - len(new)
    return [known[content_hash] for content_hash in hashes]


def _score(ratings: Sequence[float | None]) -> list[int | None]:
    """Ratings become 1-7 scores only when every one is a whole number from 1 to 7; a
    comparison never mixes scored and unscored items, or scales."""
    if all(r is not None and r.is_integer() and 1 <= r <= 7 for r in ratings):
        return [int(r) for r in ratings if r is not None]
    return [None] * len(ratings)


def store_batch(
    db: Session,
    project_id: int,
    batch: Sequence[Record],
    source: str,
    acting_id: int | None,
    counts: Counts,
) -> None:
    prompt_ids = _prompt_ids(db, project_id, batch, source, acting_id, counts)
    response_rows: list[dict[str, Any]] = []
    for record, prompt_id in zip(batch, prompt_ids, strict=True):
        for candidate in record.candidates:
            response_rows.append(
                _response(prompt_id, candidate.content, candidate.source_name or source)
            )
        if record.demonstration and _demonstrated_candidate(record) is None:
            response_rows.append(_response(prompt_id, record.demonstration[0].content, source))
    response_ids = iter(inserted_ids(db, Response.__table__, response_rows))
    counts.responses += len(response_rows)

    demonstrations: list[dict[str, Any]] = []
    comparisons: list[tuple[Record, int, list[int]]] = []
    for record, prompt_id in zip(batch, prompt_ids, strict=True):
        candidate_ids = [next(response_ids) for _ in record.candidates]
        if record.demonstration:
            shown = _demonstrated_candidate(record)
            demonstrations.append(
                {
                    "prompt_id": prompt_id,
                    "source": LabelSource.imported,
                    "source_name": source[:200],
                    "messages": _messages(record.demonstration),
                    "origin": DemonstrationOrigin.written,
                    "response_id": next(response_ids) if shown is None else candidate_ids[shown],
                }
            )
        if sum(candidate.rank is not None for candidate in record.candidates) >= 2:
            comparisons.append((record, prompt_id, candidate_ids))
    if demonstrations:
        bulk_insert(db, Demonstration.__table__, demonstrations)
        counts.demonstrations += len(demonstrations)
    _store_comparisons(db, comparisons, source, counts)
    counts.records += len(batch)


def _response(prompt_id: int, content: str, source_name: str) -> dict[str, Any]:
    return {
        "prompt_id": prompt_id,
        "content": content,
        "source": ResponseSource.imported,
        "source_name": source_name[:200],
    }


def _demonstrated_candidate(record: Record) -> int | None:
    """The candidate a one-turn demonstration repeats (Open-Assistant's top reply), if any."""
    if len(record.demonstration) != 1:
        return None
    content = record.demonstration[0].content
    return next(
        (i for i, candidate in enumerate(record.candidates) if candidate.content == content), None
    )


def _store_comparisons(
    db: Session, comparisons: list[tuple[Record, int, list[int]]], source: str, counts: Counts
) -> None:
    comparison_ids = inserted_ids(
        db,
        Comparison.__table__,
        [
            {
                "prompt_id": prompt_id,
                "source": LabelSource.imported,
                "source_name": source[:200],
                "all_unacceptable": False,
                "comment": "",
            }
            for _, prompt_id, _ in comparisons
        ],
    )
    items: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for comparison_id, (record, prompt_id, candidate_ids) in zip(
        comparison_ids, comparisons, strict=True
    ):
        ranked = [
            (response_id, candidate)
            for response_id, candidate in zip(candidate_ids, record.candidates, strict=True)
            if candidate.rank is not None
        ]
        ranks = dense_ranks([candidate.rank for _, candidate in ranked])  # type: ignore[misc]
        scores = _score([candidate.rating for _, candidate in ranked])
        ratings = {response_id: candidate.rating for response_id, candidate in ranked}
        for (response_id, _), rank, score in zip(ranked, ranks, scores, strict=True):
            items.append(
                {
                    "comparison_id": comparison_id,
                    "response_id": response_id,
                    "score": score,
                    "rank": rank,
                    "flags": [],
                    "flag_note": "",
                }
            )
        for pair in expand_pairs(
            [
                RankedResponse(response_id, rank, None)
                for (response_id, _), rank in zip(ranked, ranks, strict=True)
            ]
        ):
            better, worse = ratings[pair.winner_response_id], ratings[pair.loser_response_id]
            pairs.append(
                {
                    "comparison_id": comparison_id,
                    "prompt_id": prompt_id,
                    "winner_response_id": pair.winner_response_id,
                    "loser_response_id": pair.loser_response_id,
                    "margin": None if better is None or worse is None else better - worse,
                }
            )
    if items:
        bulk_insert(db, ComparisonItem.__table__, items)
    if pairs:
        bulk_insert(db, Pair.__table__, pairs)
    counts.comparisons += len(comparison_ids)
    counts.pairs += len(pairs)
