"""Reading judgements for agreement: two column queries, no ORM objects, straight to numpy.

What counts: comparisons made by a labeler (source 'labeler'; imports have no labeler
identity) of a task, not marked all unacceptable (they have no ranking). When a labeler
judged the same task more than once (a task re-queued under a new guideline version), only
its latest comparison counts, after the filters: one labeler, one voice per task.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelSource, Queue, Task
from app.services.agreement.ratings import Ratings

NO_VERSION = -1  # the `version` label of comparisons made under no guideline version
Bucket = Literal["day", "week"]


def counted_comparisons(
    *,
    project_ids: Collection[int],
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> ColumnElement[bool]:
    """The WHERE clause of comparisons that count, for queries joining Task and Queue.

    Its parameters are plain ints and strings (the enum by its value): fetch_tuples sends
    them to the driver without SQLAlchemy's type processing."""
    conditions = [
        Queue.project_id.in_(sorted(int(project) for project in project_ids)),
        Comparison.source == LabelSource.labeler.value,
        Comparison.all_unacceptable.is_(False),
        Comparison.labeler_id.is_not(None),
    ]
    if queue_id is not None:
        conditions.append(Task.queue_id == int(queue_id))
    if guideline_version_id is not None:
        conditions.append(Comparison.guideline_version_id == int(guideline_version_id))
    return and_(*conditions)


def _joined(query: Select, where: ColumnElement[bool]) -> Select:
    return (
        query.join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(where)
    )


def fetch_tuples(db: Session, query: Select) -> Sequence[tuple[Any, ...]]:
    """The rows as the driver returns them, inside the session's transaction.

    At millions of rows SQLAlchemy's Row objects and result processing cost twice the query
    itself; these queries select plain columns and bind plain values, so the driver's tuples
    are already what is wanted (except datetimes on SQLite, which arrive as text)."""
    if db.autoflush:
        db.flush()  # as Session.execute would: pending changes are part of what is read
    connection = db.connection()
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def _matrix(rows: Sequence[tuple[Any, ...]], columns: int) -> np.ndarray:
    """Numeric columns as float64 (NULL becomes NaN), one row per row."""
    return np.array(rows, dtype=np.float64).reshape(len(rows), columns)


def utc_day(moment: datetime | str) -> int:
    """date.toordinal of a stored UTC timestamp (SQLite returns naive UTC text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date().toordinal()


def bucket_number(day: np.ndarray, bucket: Bucket) -> np.ndarray:
    """Each day's ordinal, or that of the Monday starting its week (ordinal 1 is a Monday)."""
    return day - (day - 1) % 7 if bucket == "week" else day


def load_ratings(
    db: Session,
    *,
    project_ids: Collection[int],
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
    bucket: Bucket | None = None,
) -> Ratings:
    """The counting judgements of the projects as Ratings, with per-row labels `queue`,
    `version` (NO_VERSION for none) and, given a bucket, `bucket` (bucket_number of the UTC
    day of created_at)."""
    where = counted_comparisons(
        project_ids=project_ids, queue_id=queue_id, guideline_version_id=guideline_version_id
    )
    columns = [
        Comparison.id,
        Comparison.task_id,
        Comparison.labeler_id,
        Comparison.guideline_version_id,
        Task.queue_id,
    ]
    if bucket is not None:
        columns.append(Comparison.created_at)
    comparisons = fetch_tuples(
        db,
        _joined(select(*columns), where).order_by(
            Comparison.task_id, Comparison.labeler_id, Comparison.created_at, Comparison.id
        ),
    )
    found = _matrix([row[:5] for row in comparisons] if bucket else comparisons, 5)
    comparison_id, task, labeler, queue = (found[:, i].astype(np.int64) for i in (0, 1, 2, 4))
    version = np.nan_to_num(found[:, 3], nan=NO_VERSION).astype(np.int64)

    # Rows come sorted oldest first within (task, labeler): keep the last of each run.
    latest = np.ones(task.size, dtype=bool)
    latest[:-1] = (task[1:] != task[:-1]) | (labeler[1:] != labeler[:-1])
    order = np.argsort(comparison_id[latest])
    kept_ids = comparison_id[latest][order]

    item_query = select(
        ComparisonItem.comparison_id,
        ComparisonItem.response_id,
        ComparisonItem.rank,
        ComparisonItem.score,
    ).join(Comparison, Comparison.id == ComparisonItem.comparison_id)
    items = _matrix(fetch_tuples(db, _joined(item_query, where)), 4)
    item_comparison = items[:, 0].astype(np.int64)
    # A sentinel after the last id stands for "not a kept comparison" (ids are positive).
    position = np.searchsorted(kept_ids, item_comparison)
    kept = np.append(kept_ids, -1)[position] == item_comparison
    # Index of each kept item's comparison among the rows of the comparison query.
    source = np.flatnonzero(latest)[order][position[kept]]
    labels = {"queue": queue[source], "version": version[source]}
    if bucket is not None:
        days = np.array([utc_day(row[5]) for row in comparisons], dtype=np.int64)
        labels["bucket"] = bucket_number(days, bucket)[source]
    return Ratings.build(
        task[source],
        labeler[source],
        items[kept, 1].astype(np.int64),
        items[kept, 2],
        items[kept, 3],
        **labels,
    )
