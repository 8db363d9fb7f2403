"""Export-only rows: every raw judgement, and KTO's unpaired desirable/undesirable rows.

Raw: one row per comparison (labeler or imported, including "all unacceptable" ones), with
every item's score, rank (equal ranks are ties), flags and flag note. With exclude_flagged a
comparison that flagged anything is left out.

KTO (TRL's unpaired preference format: prompt, completion, label), one row per judged item:
- undesirable (label false) when the item was flagged, scored 3 or lower, or its comparison
  was marked "all responses unacceptable";
- desirable (label true) when it was scored 5 or higher and not flagged;
- anything else (a 4, or no score, unflagged) says neither and gives no row.
With exclude_flagged, flagged items give no row instead of an undesirable one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, Prompt, Response, Task
from app.schemas.snapshots import SnapshotFilters
from app.services.snapshots.filters import agreeing_tasks, label_conditions
from app.services.snapshots.formats import (
    KTO,
    RAW,
    Chunk,
    assistant,
    chunk_from_rows,
    in_test,
    turns,
)

BATCH = 5_000
DESIRABLE_AT_LEAST = 5
UNDESIRABLE_AT_MOST = 3


def kto_label(score: int | None, flags: list[str], all_unacceptable: bool) -> bool | None:
    """True desirable, False undesirable, None neither (see the module docstring)."""
    if flags or all_unacceptable or (score is not None and score <= UNDESIRABLE_AT_MOST):
        return False
    if score is not None and score >= DESIRABLE_AT_LEAST:
        return True
    return None


def _comparisons(
    db: Session, project_id: int, filters: SnapshotFilters
) -> Iterator[Sequence[Row[Any]]]:
    keep = None
    if filters.min_agreement is not None:
        keep = agreeing_tasks(db, project_id, filters.min_agreement)
    query = (
        select(
            Comparison.id,
            Comparison.task_id,
            Comparison.labeler_id,
            Comparison.source,
            Comparison.guideline_version_id,
            Comparison.all_unacceptable,
            Comparison.comment,
            Comparison.time_spent_seconds,
            Comparison.created_at,
            Prompt.id.label("prompt_id"),
            Prompt.messages,
            Prompt.content_hash,
        )
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .outerjoin(Task, Task.id == Comparison.task_id)
        .where(*label_conditions(Comparison, project_id, filters))
        .order_by(Comparison.id)
    )
    result = db.execute(query, execution_options={"yield_per": BATCH})
    for rows in result.partitions():
        yield [row for row in rows if keep is None or row.task_id in keep]


def _items(db: Session, comparison_ids: list[int]) -> dict[int, list[Row[Any]]]:
    found: dict[int, list[Row[Any]]] = {}
    query = (
        select(
            ComparisonItem.comparison_id,
            ComparisonItem.response_id,
            ComparisonItem.score,
            ComparisonItem.rank,
            ComparisonItem.flags,
            ComparisonItem.flag_note,
            Response.content,
        )
        .join(Response, Response.id == ComparisonItem.response_id)
        .where(ComparisonItem.comparison_id.in_(comparison_ids))
        .order_by(ComparisonItem.comparison_id, ComparisonItem.response_id)
    )
    for item in db.execute(query):
        found.setdefault(item.comparison_id, []).append(item)
    return found


def raw_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    for comparisons in _comparisons(db, project_id, filters):
        items = _items(db, [row.id for row in comparisons])
        rows: list[dict[str, Any]] = []
        test: list[bool] = []
        for row in comparisons:
            judged = items.get(row.id, [])
            if filters.exclude_flagged and any(item.flags for item in judged):
                continue
            rows.append(
                {
                    "prompt": turns(row.messages),
                    "items": [
                        {
                            "response_id": item.response_id,
                            "completion": assistant(item.content),
                            "score": item.score,
                            "rank": item.rank,
                            "flags": list(item.flags or []),
                            "flag_note": item.flag_note,
                        }
                        for item in judged
                    ],
                    "all_unacceptable": row.all_unacceptable,
                    "comment": row.comment,
                    "comparison_id": row.id,
                    "task_id": row.task_id,
                    "labeler_id": row.labeler_id,
                    "source": str(row.source.value),
                    "guideline_version_id": row.guideline_version_id,
                    "time_spent_seconds": row.time_spent_seconds,
                    "created_at": row.created_at.isoformat(),
                    "prompt_id": row.prompt_id,
                }
            )
            test.append(in_test(filters.seed, row.content_hash, filters.test_fraction))
        if rows:
            yield chunk_from_rows(rows, RAW, test)


def kto_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    for comparisons in _comparisons(db, project_id, filters):
        items = _items(db, [row.id for row in comparisons])
        rows: list[dict[str, Any]] = []
        test: list[bool] = []
        for row in comparisons:
            for item in items.get(row.id, []):
                flags = list(item.flags or [])
                label = kto_label(item.score, flags, row.all_unacceptable)
                if label is None or (filters.exclude_flagged and flags):
                    continue
                rows.append(
                    {
                        "prompt": turns(row.messages),
                        "completion": assistant(item.content),
                        "label": label,
                        "score": item.score,
                        "flags": flags,
                        "comparison_id": row.id,
                        "labeler_id": row.labeler_id,
                        "guideline_version_id": row.guideline_version_id,
                        "task_id": row.task_id,
                        "prompt_id": row.prompt_id,
                        "response_id": item.response_id,
                    }
                )
                test.append(in_test(filters.seed, row.content_hash, filters.test_fraction))
        if rows:
            yield chunk_from_rows(rows, KTO, test)
