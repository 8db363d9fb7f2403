"""Storing a batch of records with bulk inserts: prompts (deduplicated by content hash within
the project), responses (deduplicated by text under their prompt), and the labels of
app/services/imports/labels.py. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.datasets.records import Candidate, Record, RowError, Turn
from app.models import (
    Demonstration,
    DemonstrationOrigin,
    LabelSource,
    Prompt,
    PromptCategory,
    Response,
    ResponseSource,
)
from app.services.imports.bulk import bulk_insert, inserted_ids
from app.services.imports.labels import (
    ImportedComparison,
    demonstration_key,
    earlier_label_keys,
    imported_comparison,
    label_key,
    store_comparisons,
)
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
    # Keys of the comparisons and demonstrations this import stored (labels.label_key): a
    # repeated row is merged rather than counted as a second judgement.
    seen: set[int] = field(default_factory=set)
    # The first remarks on rows imported with a warning (a merged row's are not listed).
    warnings: list[RowError] = field(default_factory=list)


# Remarks listed in a result; more rows are counted, not listed.
LISTED_WARNINGS = 100


def _messages(turns: Sequence[Turn]) -> list[dict[str, Any]]:
    return [{"role": turn.role, "content": turn.content} for turn in turns]


def _prompt_ids(
    db: Session,
    project_id: int,
    batch: Sequence[Record],
    source: str,
    acting_id: int | None,
    counts: Counts,
) -> tuple[list[int], list[bool]]:
    """Each record's prompt id, and whether the record made it (the first in the batch of a
    prompt the project did not have)."""
    messages = [_messages(record.prompt) for record in batch]
    hashes = [prompt_content_hash(turns) for turns in messages]
    found = db.execute(
        select(Prompt.content_hash, func.min(Prompt.id))
        .where(Prompt.project_id == project_id, Prompt.content_hash.in_(sorted(set(hashes))))
        .group_by(Prompt.content_hash)
    )
    known: dict[str, int] = {content_hash: prompt_id for content_hash, prompt_id in found}
    new: dict[str, dict[str, Any]] = {}
    made = []
    for record, turns, content_hash in zip(batch, messages, hashes, strict=True):
        made.append(content_hash not in known and content_hash not in new)
        if made[-1]:
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
    return [known[content_hash] for content_hash in hashes], made


def _known_responses(db: Session, prompt_ids: Sequence[int]) -> dict[int, int]:
    """Imported responses already stored under these prompts, by (prompt, text) key."""
    found: dict[int, int] = {}
    for response_id, prompt_id, content in db.execute(
        select(Response.id, Response.prompt_id, Response.content)
        .where(
            Response.prompt_id.in_(sorted(set(prompt_ids))),
            Response.source == ResponseSource.imported,
        )
        .order_by(Response.id)
    ):
        found.setdefault(label_key(prompt_id, content), response_id)
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


def _store_responses(
    db: Session,
    batch: Sequence[Record],
    prompt_ids: Sequence[int],
    source: str,
    counts: Counts,
) -> tuple[list[list[int]], list[bool]]:
    """Each record's response ids (its distinct candidates', then its demonstration's when it
    repeats none), and whether the record stored any new one."""
    known = _known_responses(db, prompt_ids)
    rows: list[dict[str, Any]] = []
    # Per record: ("old", id) or ("new", index into rows).
    slots: list[list[tuple[str, int]]] = []
    made: list[bool] = []
    pending: dict[int, int] = {}
    for record, prompt_id in zip(batch, prompt_ids, strict=True):
        candidates = _distinct_candidates(record)
        counts.responses_merged += len(record.candidates) - len(candidates)
        texts = [(candidate.content, candidate.source_name or source) for candidate in candidates]
        if record.demonstration and _demonstrated_candidate(record) is None:
            texts.append((record.demonstration[0].content, source))
        record_slots = []
        before = len(rows)
        for content, source_name in texts:
            key = label_key(prompt_id, content)
            if key in known:
                record_slots.append(("old", known[key]))
                counts.responses_merged += 1
            elif key in pending:
                record_slots.append(("new", pending[key]))
                counts.responses_merged += 1
            else:
                pending[key] = len(rows)
                record_slots.append(("new", len(rows)))
                rows.append(_response(prompt_id, content, source_name))
        slots.append(record_slots)
        made.append(len(rows) > before)
    new_ids = inserted_ids(db, Response.__table__, rows)
    counts.responses += len(rows)
    ids = [[value if kind == "old" else new_ids[value] for kind, value in s] for s in slots]
    return ids, made


def store_batch(
    db: Session,
    project_id: int,
    batch: Sequence[Record],
    source: str,
    acting_id: int | None,
    counts: Counts,
) -> None:
    """Stores what is new in the batch. A row that stores nothing new (its prompt, responses,
    comparison and demonstration are all there, from this import or an earlier one from the
    same source) is merged: counted, not stored again."""
    prompt_ids, made_prompt = _prompt_ids(db, project_id, batch, source, acting_id, counts)
    response_ids, made_response = _store_responses(db, batch, prompt_ids, source, counts)
    earlier = earlier_label_keys(
        db,
        [prompt_id for prompt_id, made in zip(prompt_ids, made_prompt, strict=True) if not made],
        source,
    )
    demonstrations: list[dict[str, Any]] = []
    comparisons: list[ImportedComparison] = []
    for index, record in enumerate(batch):
        prompt_id, ids = prompt_ids[index], response_ids[index]
        candidates = _distinct_candidates(record)
        candidate_ids = ids[: len(candidates)]
        comparison = imported_comparison(prompt_id, candidate_ids, candidates)
        demonstration = None
        if record.demonstration:
            shown = _demonstrated_candidate(record)
            demonstration = {
                "prompt_id": prompt_id,
                "source": LabelSource.imported,
                "source_name": source[:200],
                "messages": _messages(record.demonstration),
                "origin": DemonstrationOrigin.written,
                "response_id": ids[-1] if shown is None else candidate_ids[shown],
            }
        labels: dict[int, ImportedComparison | dict[str, Any]] = {}
        if comparison is not None:
            labels[comparison.key] = comparison
        if demonstration is not None:
            key = demonstration_key(
                prompt_id, demonstration["messages"], demonstration["response_id"]
            )
            labels[key] = demonstration
        new_labels = {
            key: label
            for key, label in labels.items()
            if key not in counts.seen and key not in earlier
        }
        if not (made_prompt[index] or made_response[index] or new_labels):
            # The same row again (a duplicated HH or UltraFeedback row, or a file imported a
            # second time): nothing new to store.
            counts.rows_merged += record.rows
            continue
        counts.seen.update(new_labels)
        # A second record of the same row (rows 0) cannot count that row again.
        warned = min(record.rows, len({warning.line for warning in record.warnings}))
        counts.rows_warned += warned
        room = LISTED_WARNINGS - len(counts.warnings)
        counts.warnings.extend(record.warnings[: max(room, 0)])
        counts.rows_imported += record.rows - warned
        for label in new_labels.values():
            if isinstance(label, ImportedComparison):
                comparisons.append(label)
            else:
                demonstrations.append(label)
    bulk_insert(db, Demonstration.__table__, demonstrations)
    counts.demonstrations += len(demonstrations)
    stored, pairs = store_comparisons(db, comparisons, source)
    counts.comparisons += stored
    counts.pairs += pairs
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
