"""The labels an import stores (imported comparisons with their items and pairs, and
demonstrations), and what each one is for telling a repeat: a key from what is stored, so a
row stored by this import or by an earlier import from the same source is not stored again.

A comparison's key is its prompt and its ranked responses with their ranks and 1-7 scores; a
demonstration's is its prompt, its turns and the response it became. The caller owns the
transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.datasets.records import Candidate
from app.models import Comparison, ComparisonItem, Demonstration, LabelSource, Pair
from app.services.imports.bulk import bulk_insert, inserted_ids
from app.services.pairs import RankedResponse, dense_ranks, expand_pairs


def label_key(*parts: object) -> int:
    """8 bytes of a SHA-256 as an int: a million rows' worth of keys stays small."""
    digest = hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8])


@dataclass(frozen=True)
class RankedItem:
    response_id: int
    # Dense, 1 is best; equal ranks are ties.
    rank: int
    score: int | None
    # The source's own rating, kept for the pairs' margins.
    rating: float | None


@dataclass(frozen=True)
class ImportedComparison:
    prompt_id: int
    items: tuple[RankedItem, ...]

    @property
    def key(self) -> int:
        return comparison_key(
            self.prompt_id, [(item.response_id, item.rank, item.score) for item in self.items]
        )


def comparison_key(prompt_id: int, items: Sequence[tuple[int, int, int | None]]) -> int:
    return label_key("comparison", prompt_id, sorted(items))


def demonstration_key(
    prompt_id: int, messages: Sequence[dict[str, Any]], response_id: int | None
) -> int:
    turns = [(message["role"], message["content"]) for message in messages]
    return label_key("demonstration", prompt_id, turns, response_id)


def imported_comparison(
    prompt_id: int, response_ids: Sequence[int], candidates: Sequence[Candidate]
) -> ImportedComparison | None:
    """The comparison a row's ranked responses make, or None with fewer than two ranked."""
    ranked = [
        (response_id, candidate)
        for response_id, candidate in zip(response_ids, candidates, strict=True)
        if candidate.rank is not None
    ]
    if len(ranked) < 2:
        return None
    ranks = dense_ranks([candidate.rank for _, candidate in ranked])  # type: ignore[misc]
    scores = _score([candidate.rating for _, candidate in ranked])
    return ImportedComparison(
        prompt_id,
        tuple(
            RankedItem(response_id, rank, score, candidate.rating)
            for (response_id, candidate), rank, score in zip(ranked, ranks, scores, strict=True)
        ),
    )


def _score(ratings: Sequence[float | None]) -> list[int | None]:
    """Ratings become 1-7 scores only when every one is a whole number from 1 to 7; a
    comparison never mixes scored and unscored items, or scales."""
    if all(r is not None and r.is_integer() and 1 <= r <= 7 for r in ratings):
        return [int(r) for r in ratings if r is not None]
    return [None] * len(ratings)


def earlier_label_keys(db: Session, prompt_ids: Sequence[int], source: str) -> set[int]:
    """The keys of the comparisons and demonstrations already imported under these prompts
    from this source (a file imported again, or an earlier batch of this import)."""
    unique = sorted(set(prompt_ids))
    if not unique:
        return set()
    source_name = source[:200]
    items: dict[tuple[int, int], list[tuple[int, int, int | None]]] = {}
    for comparison_id, prompt_id, response_id, rank, score in db.execute(
        select(
            Comparison.id,
            Comparison.prompt_id,
            ComparisonItem.response_id,
            ComparisonItem.rank,
            ComparisonItem.score,
        )
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .where(
            Comparison.prompt_id.in_(unique),
            Comparison.source == LabelSource.imported,
            Comparison.source_name == source_name,
        )
    ):
        items.setdefault((comparison_id, prompt_id), []).append((response_id, rank, score))
    keys = {comparison_key(prompt_id, found) for (_, prompt_id), found in items.items()}
    for prompt_id, messages, response_id in db.execute(
        select(Demonstration.prompt_id, Demonstration.messages, Demonstration.response_id).where(
            Demonstration.prompt_id.in_(unique),
            Demonstration.source == LabelSource.imported,
            Demonstration.source_name == source_name,
        )
    ):
        keys.add(demonstration_key(prompt_id, messages, response_id))
    return keys


def store_comparisons(
    db: Session, comparisons: Sequence[ImportedComparison], source: str
) -> tuple[int, int]:
    """Stores the comparisons with their items and pairs; returns how many of each."""
    comparison_ids = inserted_ids(
        db,
        Comparison.__table__,
        [
            {
                "prompt_id": comparison.prompt_id,
                "source": LabelSource.imported,
                "source_name": source[:200],
                "all_unacceptable": False,
                "comment": "",
            }
            for comparison in comparisons
        ],
    )
    items: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for comparison_id, comparison in zip(comparison_ids, comparisons, strict=True):
        for item in comparison.items:
            items.append(
                {
                    "comparison_id": comparison_id,
                    "response_id": item.response_id,
                    "score": item.score,
                    "rank": item.rank,
                    "flags": [],
                    "flag_note": "",
                }
            )
        ratings = {item.response_id: item.rating for item in comparison.items}
        for pair in expand_pairs(
            [RankedResponse(item.response_id, item.rank, None) for item in comparison.items]
        ):
            better, worse = ratings[pair.winner_response_id], ratings[pair.loser_response_id]
            pairs.append(
                {
                    "comparison_id": comparison_id,
                    "prompt_id": comparison.prompt_id,
                    "winner_response_id": pair.winner_response_id,
                    "loser_response_id": pair.loser_response_id,
                    "margin": None if better is None or worse is None else better - worse,
                }
            )
    bulk_insert(db, ComparisonItem.__table__, items)
    bulk_insert(db, Pair.__table__, pairs)
    return len(comparison_ids), len(pairs)
