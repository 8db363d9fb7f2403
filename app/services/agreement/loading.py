"""Reading judgements for agreement: two integer-column queries, straight to numpy.

What counts: comparisons made by a labeler (source 'labeler'; imports have no labeler
identity) of a task, not marked all unacceptable (they have no ranking). When a labeler
judged the same task more than once (a task re-queued under a new guideline version), only
its latest comparison counts, after the filters: one labeler, one voice per task.

At a million comparisons the cost is in turning rows into Python objects, so every column is
a non-NULL integer (NULLs become sentinels in SQL, rank and score share one column) and the
rows go to numpy without SQLAlchemy or Python objects where the database allows it:
PostgreSQL packs them into bytea blocks, SQLite's cursor hands them over in slices.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import reduce
from itertools import chain
from typing import Any, Literal

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    LargeBinary,
    Select,
    String,
    and_,
    cast,
    exists,
    extract,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelReview,
    LabelSource,
    Queue,
    Response,
    ReviewVerdict,
    Task,
)
from app.services.agreement.ratings import Ratings

NO_VERSION = -1  # the `version` label of comparisons made under no guideline version
Bucket = Literal["day", "week"]
EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
SCORE_BITS = 3  # scores are 1..7 (a CHECK constraint), 0 standing for none
SQLITE_SLICE = 65536  # rows per fetchmany
BLOCK = 2**20  # ids per read (on PostgreSQL, per bytea)
ID_BITS = 31
NOT_INTEGERS = "a column holds a NULL or a value that is not an integer"
# Reading every item of a range of comparison ids and dropping the ones that do not count is
# cheaper than joining when at most this many ids in the range are not wanted per wanted one.
RANGE_WASTE = 1.0


def counted_comparisons(
    *,
    project_ids: Collection[int],
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
    task_ids: Collection[int] | None = None,
    without_rejected: bool = False,
) -> ColumnElement[bool]:
    """The WHERE clause of comparisons that count, for queries joining Task and Queue;
    `without_rejected` also leaves out those an admin rejected (snapshots do).

    Its parameters are plain ints and strings (the enum by its value): the queries here send
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
    if task_ids is not None:
        conditions.append(Comparison.task_id.in_(sorted(int(task) for task in task_ids)))
    if without_rejected:
        conditions.append(
            ~exists().where(
                LabelReview.comparison_id == Comparison.id,
                LabelReview.verdict == ReviewVerdict.rejected.value,
            )
        )
    return and_(*conditions)


def _joined(query: Select, where: ColumnElement[bool]) -> Select:
    return (
        query.join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(where)
    )


def _compiled(db: Session, query: Select) -> tuple[Any, str, Any]:
    """(DBAPI connection, SQL, parameters) of the query, inside the session's transaction."""
    if db.autoflush:
        db.flush()  # as Session.execute would: pending changes are part of what is read
    connection = db.connection()
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    return connection.connection, compiled.string, params


def fetch_integers(
    db: Session,
    query: Select,
    *,
    order_by: Sequence[ColumnElement[Any]] = (),
    within: tuple[ColumnElement[int], int, int] | None = None,
) -> np.ndarray:
    """The rows of a query whose every column is a non-NULL integer, as an int64 matrix,
    sorted by `order_by`.

    `within` (column, low, high) says the rows all have low <= column <= high; they are read
    BLOCK values of the column at a time, in order (so a first sort key of that column sorts
    the whole). PostgreSQL packs each block itself: every row's columns as 8 big-endian bytes
    (int8send), the rows in one bytea (which holds at most 1 GB). SQLite's cursor hands tuples
    over in slices, turned into numpy slice by slice."""
    columns = len(query.selected_columns)
    blocks = [query]
    if within is not None:
        column, low, high = within
        blocks = [
            query.where(column.between(start, min(start + BLOCK - 1, high)))
            for start in range(low, high + 1, BLOCK)
        ]
    read = _packed_by_postgresql if db.get_bind().dialect.name == "postgresql" else _sqlite_rows
    parts = [read(db, block, columns, order_by) for block in blocks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([np.zeros((0, columns), dtype=np.int64), *parts])


def _sqlite_rows(
    db: Session, query: Select, columns: int, order_by: Sequence[ColumnElement[Any]]
) -> np.ndarray:
    dbapi, sql, params = _compiled(db, query.order_by(*order_by))
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql, params)
        parts = []
        while rows := cursor.fetchmany(SQLITE_SLICE):
            flat = chain.from_iterable(rows)
            try:
                parts.append(np.fromiter(flat, dtype=np.int64, count=len(rows) * columns))
            except TypeError:
                raise ValueError(NOT_INTEGERS) from None
    finally:
        cursor.close()
    if not parts:
        return np.zeros((0, columns), dtype=np.int64)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(-1, columns)


def _packed_by_postgresql(
    db: Session, query: Select, columns: int, order_by: Sequence[ColumnElement[Any]]
) -> np.ndarray:
    eight_bytes = [
        func.int8send(cast(column, BigInteger), type_=LargeBinary)
        for column in query.selected_columns
    ]
    packed = reduce(lambda a, b: a.op("||", return_type=LargeBinary)(b), eight_bytes)
    nothing = literal(b"", LargeBinary)
    separator = aggregate_order_by(nothing, *order_by) if order_by else nothing
    dbapi, sql, params = _compiled(
        db, query.with_only_columns(func.string_agg(packed, separator), func.count())
    )
    with dbapi.cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        data, rows = cursor.fetchone()
    data = bytes(data or b"")
    if len(data) != rows * columns * 8:  # a NULL makes a row's bytes NULL: string_agg skips it
        raise ValueError(NOT_INTEGERS)
    return np.frombuffer(data, dtype=">i8").astype(np.int64).reshape(-1, columns)


def _created_microseconds(db: Session) -> ColumnElement[int]:
    """Comparison.created_at as whole microseconds since 1970 (UTC): exact, so it orders."""
    created = Comparison.created_at
    if db.get_bind().dialect.name == "sqlite":
        # SQLite keeps naive UTC text: 'YYYY-MM-DD HH:MM:SS', then '.ffffff' as SQLAlchemy
        # writes it (a server default has none); its date functions read it as UTC.
        seconds = cast(func.strftime("%s", created), Integer)
        padded = cast(created, String).op("||", return_type=String)(".000000")
        return seconds * 1_000_000 + cast(func.substr(padded, 21, 6), Integer)
    # EXTRACT gives a numeric (PostgreSQL 14+), exact to the microsecond.
    return cast(extract("epoch", created) * 1_000_000, BigInteger)


def utc_day(microseconds: np.ndarray) -> np.ndarray:
    """date.toordinal of the UTC day of each timestamp given in microseconds since 1970."""
    return microseconds // (86400 * 1_000_000) + EPOCH_ORDINAL


def bucket_number(day: np.ndarray, bucket: Bucket) -> np.ndarray:
    """Each day's ordinal, or that of the Monday starting its week (ordinal 1 is a Monday)."""
    return day - (day - 1) % 7 if bucket == "week" else day


def load_ratings(
    db: Session,
    *,
    project_ids: Collection[int],
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
    task_ids: Collection[int] | None = None,
    bucket: Bucket | None = None,
    without_rejected: bool = False,
) -> Ratings:
    """The counting judgements of the projects (optionally only of some tasks) as Ratings,
    with per-row labels `queue`, `version` (NO_VERSION for none) and, given a bucket,
    `bucket` (bucket_number of the UTC day of created_at)."""
    where = counted_comparisons(
        project_ids=project_ids,
        queue_id=queue_id,
        guideline_version_id=guideline_version_id,
        task_ids=task_ids,
        without_rejected=without_rejected,
    )
    columns: list[Any] = [
        Comparison.id,
        Comparison.task_id,
        Comparison.labeler_id,
        func.coalesce(Comparison.guideline_version_id, NO_VERSION),
        Task.queue_id,
        _created_microseconds(db),
    ]
    found = fetch_integers(
        db,
        _joined(select(*columns), where),
        within=(Comparison.task_id, *_task_range(db, task_ids)),
    )
    # Sorted here rather than by the database (a second a million rows on PostgreSQL):
    # by task and labeler, oldest first; keep the last of each (task, labeler) run.
    found = found[np.lexsort((found[:, 0], found[:, 5], found[:, 2], found[:, 1]))]
    task, labeler = found[:, 1], found[:, 2]
    latest = np.ones(task.size, dtype=bool)
    latest[:-1] = (task[1:] != task[:-1]) | (labeler[1:] != labeler[:-1])
    judgements = found[latest]  # one row per (task, labeler), in that order
    del found, task, labeler, latest

    items = _items(db, judgements[:, 0], where)
    # Each item's judgement; judgements are in (task, labeler) order, so sorting items by
    # (judgement, response) gives Ratings' order and spares it a three-key sort.
    by_id = np.argsort(judgements[:, 0])
    judgement = by_id[np.searchsorted(judgements[by_id, 0], items[:, 0])]
    response = items[:, 1]
    width = int(response.max()) + 1 if response.size else 1
    if judgements.shape[0] * width < 2**62:
        order = np.argsort(judgement * width + response)
    else:
        order = np.lexsort((response, judgement))
    judgement, response, code = judgement[order], response[order], items[order, 2]
    del items, order
    rank = (code >> SCORE_BITS).astype(np.float64)
    score = (code & (2**SCORE_BITS - 1)).astype(np.float64)
    rank[rank == 0] = np.nan
    score[score == 0] = np.nan
    source = judgements[judgement]
    labels = {"queue": source[:, 4], "version": source[:, 3]}
    if bucket is not None:
        labels["bucket"] = bucket_number(utc_day(source[:, 5]), bucket)
    return Ratings.build(source[:, 1], source[:, 2], response, rank, score, **labels)


def _task_range(db: Session, task_ids: Collection[int] | None) -> tuple[int, int]:
    """Bounds of the task ids that can be asked for (the primary key's ends: no scan)."""
    if task_ids is not None:
        return (min(task_ids), max(task_ids)) if task_ids else (0, -1)
    low, high = db.execute(select(func.min(Task.id), func.max(Task.id))).one()
    return (int(low), int(high)) if low is not None else (0, -1)


def _items(db: Session, kept_ids: np.ndarray, where: ColumnElement[bool]) -> np.ndarray:
    """(comparison id, response id, rank << SCORE_BITS | score) of every item of the kept
    comparisons (0 for a missing rank or score), in no particular order."""
    if kept_ids.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    code = (func.coalesce(ComparisonItem.rank, 0) * 2**SCORE_BITS) + func.coalesce(
        ComparisonItem.score, 0
    )
    low, high = int(kept_ids.min()), int(kept_ids.max())
    # Two ids in one number when they fit (a column less to send and convert): always on
    # PostgreSQL, whose integer ids stay below 2**31.
    top_response = db.scalar(select(func.max(Response.id))) or 0
    packed = high < 2**ID_BITS and top_response < 2**ID_BITS
    ids: list[ColumnElement[int]] = (
        [cast(ComparisonItem.comparison_id, BigInteger) * 2**ID_BITS + ComparisonItem.response_id]
        if packed
        else [ComparisonItem.comparison_id, ComparisonItem.response_id]
    )
    query = select(*ids, code)
    if high - low + 1 > (1 + RANGE_WASTE) * kept_ids.size:
        # Few of the ids in the range count: the database picks their items.
        query = _joined(
            query.join(Comparison, Comparison.id == ComparisonItem.comparison_id), where
        )
    items = fetch_integers(db, query, within=(ComparisonItem.comparison_id, low, high))
    if packed:
        items = np.column_stack(
            [items[:, 0] >> ID_BITS, items[:, 0] & (2**ID_BITS - 1), items[:, 1]]
        )
    # Only the kept comparisons' items (a range holds others; the join, older judgements).
    ordered = np.sort(kept_ids)
    position = np.minimum(np.searchsorted(ordered, items[:, 0]), ordered.size - 1)
    return items[ordered[position] == items[:, 0]]
