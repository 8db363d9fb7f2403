"""Storing a batch of records with bulk inserts: prompts (deduplicated by content hash within
the project), responses, demonstrations, and for ranked candidates an imported comparison
with its items and pairs. The caller owns the transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.datasets.records import Candidate, Record, RowError, Turn
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
    # Responses not stored again: the same text under the same prompt, from this import or
    # an earlier one, or twice in one row (an UltraFeedback row with a repeated completion).
    responses_merged: int = 0
    # Rows by outcome; with the skipped ones they add up to the rows read.
    rows_imported: int = 0
    rows_warned: int = 0
    rows_merged: int = 0
    # Rows already stored by this import (prompt, responses, ranks and demonstration), as
    # 8-byte digests (as ints, to keep a million rows' worth small): a repeated row is merged
    # rather than counted as a second judgement.
    seen: set[int] = field(default_factory=set)
    # The first remarks on rows imported with a warning (a merged row's are not listed).
    warnings: list[RowError] = field(default_factory=list)


# Remarks listed in a result; more rows are counted, not listed.
LISTED_WARNINGS = 100


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
    first_rank: dict[str, tuple[int, int | None]] = {}
    for position, candidate in enumerate(record.candidates, start=1):
        earlier = first_rank.setdefault(candidate.content, (position, candidate.rank))
        if earlier[1] != candidate.rank:
            return (
                f"responses {earlier[0]} and {position} are the same text ranked differently "
                "(a comparison of a response with itself)"
            )
    for candidate in record.candidates:
        if candidate.rank is not None and candidate.rank < 1:
            return f"rank {candidate.rank} is not 1 or more"
        if candidate.rating is not None and not math.isfinite(candidate.rating):
            return "a rating must be a finite number"
    return None


def record_warnings(record: Record) -> tuple[RowError, ...]:
    """The reader's remarks, and one more when a row's ranked responses are all one text (a
    tie of a response with itself): kept as one response, but there is nothing to compare."""
    ranked = [candidate for candidate in record.candidates if candidate.rank is not None]
    if len(ranked) >= 2 and len({candidate.content for candidate in ranked}) < 2:
        return (
            *record.warnings,
            RowError(record.line, "the ranked responses are one text; kept once, not compared"),
        )
    return record.warnings


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


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).digest()[:16]


def _known_responses(db: Session, prompt_ids: Sequence[int]) -> dict[bytes, int]:
    """Imported responses already stored under these prompts, by (prompt, text) digest."""
    found: dict[bytes, int] = {}
    for response_id, prompt_id, content in db.execute(
        select(Response.id, Response.prompt_id, Response.content)
        .where(
            Response.prompt_id.in_(sorted(set(prompt_ids))),
            Response.source == ResponseSource.imported,
        )
        .order_by(Response.id)
    ):
        found.setdefault(_digest(prompt_id, content), response_id)
    return found


def _distinct_candidates(record: Record) -> list[Candidate]:
    """A repeated text in one row is one response (record_problem refused differing ranks)."""
    texts: set[str] = set()
    distinct = []
    for candidate in record.candidates:
        if candidate.content not in texts:
            texts.add(candidate.content)
            distinct.append(candidate)
    return distinct


def store_batch(
    db: Session,
    project_id: int,
    batch: Sequence[Record],
    source: str,
    acting_id: int | None,
    counts: Counts,
) -> None:
    prompt_ids = _prompt_ids(db, project_id, batch, source, acting_id, counts)
    known = _known_responses(db, prompt_ids)
    response_rows: list[dict[str, Any]] = []
    # Per record: each candidate's response, then the demonstration's when it repeats none,
    # as ("old", id) or ("new", index into response_rows).
    slots: list[list[tuple[str, int]]] = []
    pending: dict[bytes, int] = {}
    for record, prompt_id in zip(batch, prompt_ids, strict=True):
        candidates = _distinct_candidates(record)
        counts.responses_merged += len(record.candidates) - len(candidates)
        texts = [(candidate.content, candidate.source_name or source) for candidate in candidates]
        if record.demonstration and _demonstrated_candidate(record) is None:
            texts.append((record.demonstration[0].content, source))
        record_slots = []
        for content, source_name in texts:
            key = _digest(prompt_id, content)
            if key in known:
                record_slots.append(("old", known[key]))
                counts.responses_merged += 1
            elif key in pending:
                record_slots.append(("new", pending[key]))
                counts.responses_merged += 1
            else:
                pending[key] = len(response_rows)
                record_slots.append(("new", len(response_rows)))
                response_rows.append(_response(prompt_id, content, source_name))
        slots.append(record_slots)
    new_ids = inserted_ids(db, Response.__table__, response_rows)
    counts.responses += len(response_rows)

    demonstrations: list[dict[str, Any]] = []
    comparisons: list[tuple[Record, int, list[int]]] = []
    for record, prompt_id, record_slots in zip(batch, prompt_ids, slots, strict=True):
        ids = [value if kind == "old" else new_ids[value] for kind, value in record_slots]
        candidates = _distinct_candidates(record)
        candidate_ids = ids[: len(candidates)]
        signature = int.from_bytes(
            _digest(
                prompt_id,
                sorted(
                    (i, c.rank, c.rating) for i, c in zip(candidate_ids, candidates, strict=True)
                ),
                _messages(record.demonstration),
            )[:8]
        )
        if signature in counts.seen:
            # The same row again (a duplicated HH or UltraFeedback row): nothing new to store.
            counts.rows_merged += record.rows
            continue
        counts.seen.add(signature)
        # A second record of the same row (rows 0) cannot count that row again.
        warned = min(record.rows, len({warning.line for warning in record.warnings}))
        counts.rows_warned += warned
        room = LISTED_WARNINGS - len(counts.warnings)
        counts.warnings.extend(record.warnings[: max(room, 0)])
        counts.rows_imported += record.rows - warned
        if record.demonstration:
            shown = _demonstrated_candidate(record)
            demonstrations.append(
                {
                    "prompt_id": prompt_id,
                    "source": LabelSource.imported,
                    "source_name": source[:200],
                    "messages": _messages(record.demonstration),
                    "origin": DemonstrationOrigin.written,
                    "response_id": ids[-1] if shown is None else candidate_ids[shown],
                }
            )
        if sum(candidate.rank is not None for candidate in candidates) >= 2:
            comparisons.append(
                (
                    dataclasses.replace(record, candidates=tuple(candidates)),
                    prompt_id,
                    candidate_ids,
                )
            )
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
        (
            i
            for i, candidate in enumerate(_distinct_candidates(record))
            if candidate.content == content
        ),
        None,
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
