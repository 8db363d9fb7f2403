"""The data browser: a project's labels and prompts, filtered, searched and paged by keyset.

Pages are keyed on the row id, newest first (`id < cursor`), never on an offset: page 20,000
costs what page 1 costs, because the primary key index finds where the page starts. Ids follow
the order rows were stored in, which is submission order for labels; the date filters use
created_at.

Three kinds of label rows: comparisons, demonstrations, and skips (an assignment a labeler
skipped, with the reason and note it gave; keyed on the assignment id, dated when it was
skipped). "Agreement below x" reads each comparison task's stored pairwise agreement
(app/services/task_agreement.py; indexed), so it costs what another join costs; a task with
one labeler so far has no figure and is never below x.

Search (every word, in the prompt or, for the prompts view, in a response too) is
app/services/search.py: PostgreSQL full text, SQLite FTS5.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, cast, exists, false, func, literal_column, select
from sqlalchemy import Text as SqlText
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.errors import InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    GuidelineVersion,
    LabelSource,
    Prompt,
    PromptCategory,
    Queue,
    Response,
    ResponseSource,
    Task,
    TaskAgreement,
    User,
)
from app.schemas.labeling import SkipReason
from app.services import search
from app.services.dashboard.exports import cell
from app.services.prompts import MAX_ID, get_project_checked

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SNIPPET_CHARS = 200
LABEL_KINDS = ("comparison", "demonstration", "skip")
FLAG_KEY = re.compile(r"[a-z][a-z0-9_]*")

Row = TypeVar("Row")


@dataclass(frozen=True)
class LabelFilters:
    kind: str = "comparison"
    queue_id: int | None = None
    labeler_id: int | None = None
    source: LabelSource | None = None
    category: PromptCategory | None = None
    flag: str | None = None
    guideline_version: int | None = None
    gold: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None
    # Labels of tasks whose stored pairwise agreement is below this (0..1).
    agreement_below: float | None = None
    # Skips only: the reason the labeler picked.
    skip_reason: SkipReason | None = None


@dataclass(frozen=True)
class PromptFilters:
    category: PromptCategory | None = None
    # Prompts with at least one response of this source.
    response_source: ResponseSource | None = None
    # Prompts a labeler skipped a task of (True), or none did (False).
    skipped: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    search: str | None = None


@dataclass(frozen=True)
class LabelRow:
    kind: str
    id: int
    created_at: datetime
    task_id: int | None
    queue_id: int | None
    queue_name: str | None
    labeler: str | None
    source: str
    source_name: str
    prompt_id: int
    category: str
    prompt_text: str
    # A comparison's comment, or a demonstration's first written turn.
    label_text: str
    flags: list[str]
    guideline_version: int | None
    gold: bool
    time_spent_seconds: float | None
    # The task's stored pairwise agreement (None: no task, or fewer than two labelers yet).
    task_agreement: float | None = None
    # A skip's reason (its note is label_text).
    skip_reason: str | None = None


@dataclass(frozen=True)
class PromptRow:
    id: int
    created_at: datetime
    category: str
    source: str
    prompt_text: str
    responses: int


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    # The id to pass as `cursor` for the next page; None on the last page.
    next_cursor: int | None


def day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """The UTC instants for "from day `since` through day `until`" (both days included)."""
    if since is not None and until is not None and until < since:
        raise InvalidInput("the 'to' day is before the 'from' day")
    start = datetime.combine(since, time(), UTC) if since else None
    end = datetime.combine(until + timedelta(days=1), time(), UTC) if until else None
    return start, end


def snippet(text: str) -> str:
    """The first lines of a text, at most SNIPPET_CHARS characters."""
    text = text.strip()
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def first_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            return snippet(str(message.get("content", "")))
    return snippet(str(messages[0].get("content", ""))) if messages else ""


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


def _check_cursor(cursor: int | None) -> None:
    if cursor is not None and not 1 <= cursor <= MAX_ID:
        raise InvalidInput("cursor must be an id from a previous page's next_cursor")


def _label_model(kind: str) -> Any:
    return {"comparison": Comparison, "demonstration": Demonstration, "skip": Assignment}[kind]


def _label_query(db: Session, project_id: int, filters: LabelFilters) -> Select[Any]:
    if filters.kind not in LABEL_KINDS:
        raise InvalidInput("kind must be comparison, demonstration or skip", field="kind")
    if filters.agreement_below is not None:
        if filters.kind == "demonstration":
            raise InvalidInput(
                "agreement is between comparisons of a task; a demonstration has none",
                field="agreement_below",
            )
        if not 0 <= filters.agreement_below <= 1:
            raise InvalidInput("agreement_below must be between 0 and 1", field="agreement_below")
    if filters.skip_reason is not None and filters.kind != "skip":
        raise InvalidInput("a skip reason filters skips (kind skip)", field="skip_reason")
    if filters.kind == "skip":
        return _skip_query(db, project_id, filters)
    label: Any = _label_model(filters.kind)
    text_column = label.comment if label is Comparison else label.messages
    query = (
        select(
            label.id,
            label.created_at,
            label.task_id,
            Task.queue_id,
            Queue.name,
            User.username,
            label.source,
            label.source_name,
            label.prompt_id,
            Prompt.category,
            Prompt.messages,
            text_column,
            GuidelineVersion.version,
            Task.is_gold,
            label.time_spent_seconds,
            TaskAgreement.rate,
            literal_column("NULL"),
        )
        .join(Prompt, Prompt.id == label.prompt_id)
        .outerjoin(Task, Task.id == label.task_id)
        .outerjoin(Queue, Queue.id == Task.queue_id)
        .outerjoin(User, User.id == label.labeler_id)
        .outerjoin(GuidelineVersion, GuidelineVersion.id == label.guideline_version_id)
        .outerjoin(TaskAgreement, TaskAgreement.task_id == label.task_id)
        .where(Prompt.project_id == project_id)
    )
    if label is Comparison:
        # A rewrite is stored as its own comparison inside the one it was made in; the browser
        # lists the labeler's judgements.
        query = query.where(Comparison.rewrite_in_comparison_id.is_(None))
    if filters.queue_id is not None:
        query = query.where(Task.queue_id == filters.queue_id)
    if filters.labeler_id is not None:
        query = query.where(label.labeler_id == filters.labeler_id)
    if filters.source is not None:
        query = query.where(label.source == filters.source)
    if filters.category is not None:
        query = query.where(Prompt.category == filters.category)
    if filters.guideline_version is not None:
        query = query.where(GuidelineVersion.version == filters.guideline_version)
    if filters.gold is not None:
        query = query.where(_gold_task() if filters.gold else ~_gold_task())
    if filters.agreement_below is not None:
        query = query.where(TaskAgreement.rate < filters.agreement_below)
    if filters.since is not None:
        query = query.where(label.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(label.created_at < filters.until)
    if filters.flag:
        if label is not Comparison:
            raise InvalidInput(
                "flags belong to comparisons; a demonstration has none", field="flag"
            )
        if not FLAG_KEY.fullmatch(filters.flag):
            raise InvalidInput(
                "a flag is a key of the label schema, such as hallucination", field="flag"
            )
        # Flag keys are [a-z0-9_] (the label schema's rule), so the quoted key cannot match
        # inside another key in the JSON text.
        query = query.where(
            exists().where(
                ComparisonItem.comparison_id == Comparison.id,
                cast(ComparisonItem.flags, SqlText).like(f'%"{filters.flag}"%'),
            )
        )
    if filters.search:
        matches = search.prompt_matches(db, filters.search)
        if matches is not None:
            query = query.where(matches)
    return query


def _gold_task() -> ColumnElement[bool]:
    return and_(Task.id.is_not(None), Task.is_gold.is_(True))


def _skip_query(db: Session, project_id: int, filters: LabelFilters) -> Select[Any]:
    """Skipped assignments as label rows: the columns of _label_query's, where a skip has
    them (its note in the label's place, when it was skipped as its date, the lease's start in
    time spent's place, worked out in _label_row)."""
    if filters.flag:
        raise InvalidInput("flags belong to comparisons; a skip has none", field="flag")
    if filters.guideline_version is not None:
        raise InvalidInput(
            "a skip records no guideline version; filter comparisons or demonstrations by it",
            field="guideline_version",
        )
    query = (
        select(
            Assignment.id,
            Assignment.finished_at,
            Assignment.task_id,
            Task.queue_id,
            Queue.name,
            User.username,
            literal_column(f"'{LabelSource.labeler.value}'"),
            literal_column("''"),
            Task.prompt_id,
            Prompt.category,
            Prompt.messages,
            Assignment.skip_note,
            literal_column("NULL"),
            Task.is_gold,
            Assignment.leased_at,
            TaskAgreement.rate,
            Assignment.skip_reason,
            Assignment.idle_seconds,
        )
        .join(Task, Task.id == Assignment.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .join(Prompt, Prompt.id == Task.prompt_id)
        .join(User, User.id == Assignment.labeler_id)
        .outerjoin(TaskAgreement, TaskAgreement.task_id == Assignment.task_id)
        .where(Prompt.project_id == project_id, Assignment.status == AssignmentStatus.skipped)
    )
    if filters.queue_id is not None:
        query = query.where(Task.queue_id == filters.queue_id)
    if filters.labeler_id is not None:
        query = query.where(Assignment.labeler_id == filters.labeler_id)
    if filters.source in (LabelSource.imported, LabelSource.ai):
        query = query.where(false())  # only labelers skip
    if filters.category is not None:
        query = query.where(Prompt.category == filters.category)
    if filters.gold is not None:
        query = query.where(Task.is_gold.is_(filters.gold))
    if filters.agreement_below is not None:
        query = query.where(TaskAgreement.rate < filters.agreement_below)
    if filters.skip_reason is not None:
        query = query.where(Assignment.skip_reason == filters.skip_reason.value)
    if filters.since is not None:
        query = query.where(Assignment.finished_at >= filters.since)
    if filters.until is not None:
        query = query.where(Assignment.finished_at < filters.until)
    if filters.search:
        matches = search.prompt_matches(db, filters.search)
        if matches is not None:
            query = query.where(matches)
    return query


def _flags_of(db: Session, comparison_ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, set[str]] = {}
    if comparison_ids:
        rows = db.execute(
            select(ComparisonItem.comparison_id, ComparisonItem.flags).where(
                ComparisonItem.comparison_id.in_(comparison_ids)
            )
        )
        for comparison_id, flags in rows:
            found.setdefault(comparison_id, set()).update(flags or [])
    return {key: sorted(value) for key, value in found.items()}


def list_labels(
    db: Session,
    project_id: int,
    filters: LabelFilters,
    *,
    cursor: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[LabelRow]:
    """One page of the project's labels, newest first, after `cursor` (an id)."""
    get_project_checked(db, project_id)
    _check_cursor(cursor)
    limit = _page_size(limit)
    query = _label_query(db, project_id, filters)
    label: Any = _label_model(filters.kind)
    if cursor is not None:
        query = query.where(label.id < cursor)
    rows = db.execute(query.order_by(label.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    flags = _flags_of(db, [row[0] for row in rows]) if label is Comparison else {}
    items = [_label_row(filters.kind, row, flags.get(row[0], [])) for row in rows]
    return Page(items, items[-1].id if more else None)


def _label_row(kind: str, row: Any, flags: list[str]) -> LabelRow:
    (id_, created, task_id, queue_id, queue_name, username, source, source_name, prompt_id) = row[
        :9
    ]
    category, messages, label_text, version, gold, seconds, agreement, skip_reason = row[9:17]
    if kind == "demonstration":
        label_text = first_turn(label_text or [])
    if str(getattr(source, "value", source)) == LabelSource.ai.value:
        # An AI label's "labeler" is the judge model that made it (its name when it was made).
        username, source_name = source_name, "AI"
    if kind == "skip":
        # `seconds` holds the lease's start: the time spent before skipping, less idle time.
        seconds = max(0.0, (created - seconds).total_seconds() - row[17])
    return LabelRow(
        kind=kind,
        id=id_,
        created_at=created,
        task_id=task_id,
        queue_id=queue_id,
        queue_name=queue_name,
        labeler=username,
        source=str(getattr(source, "value", source)),
        source_name=source_name,
        prompt_id=prompt_id,
        category=str(category.value),
        prompt_text=first_user_text(messages or []),
        label_text=snippet(label_text or ""),
        flags=flags,
        guideline_version=version,
        gold=bool(gold),
        time_spent_seconds=seconds,
        task_agreement=agreement,
        skip_reason=skip_reason,
    )


def first_turn(messages: Sequence[dict[str, Any]]) -> str:
    return snippet(str(messages[0].get("content", ""))) if messages else ""


def iter_labels(
    db: Session, project_id: int, filters: LabelFilters, batch: int = MAX_PAGE_SIZE
) -> Iterator[LabelRow]:
    """Every label the filters select, page by page (for the CSV), newest first."""
    cursor: int | None = None
    while True:
        page = list_labels(db, project_id, filters, cursor=cursor, limit=batch)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _prompt_query(project_id: int, filters: PromptFilters) -> Select[Any]:
    """The prompts the filters select, but for the search (search.newest_prompts)."""
    responses = (
        select(func.count())
        .select_from(Response)
        .where(Response.prompt_id == Prompt.id)
        .scalar_subquery()
    )
    query = select(
        Prompt.id, Prompt.created_at, Prompt.category, Prompt.source, Prompt.messages, responses
    ).where(Prompt.project_id == project_id)
    if filters.category is not None:
        query = query.where(Prompt.category == filters.category)
    if filters.response_source is not None:
        query = query.where(
            exists().where(
                Response.prompt_id == Prompt.id, Response.source == filters.response_source
            )
        )
    if filters.skipped is not None:
        skipped = exists().where(
            Task.prompt_id == Prompt.id,
            Assignment.task_id == Task.id,
            Assignment.status == AssignmentStatus.skipped,
        )
        query = query.where(skipped if filters.skipped else ~skipped)
    if filters.since is not None:
        query = query.where(Prompt.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Prompt.created_at < filters.until)
    return query


def list_prompts(
    db: Session,
    project_id: int,
    filters: PromptFilters,
    *,
    cursor: int | None = None,
    limit: int = PAGE_SIZE,
) -> Page[PromptRow]:
    """One page of the project's prompts, newest first; search matches prompt or response."""
    get_project_checked(db, project_id)
    _check_cursor(cursor)
    limit = _page_size(limit)
    query = _prompt_query(project_id, filters)
    if cursor is not None:
        query = query.where(Prompt.id < cursor)
    rows = search.newest_prompts(db, query, filters.search or "", limit + 1)
    more = len(rows) > limit
    items = [
        PromptRow(
            id=row[0],
            created_at=row[1],
            category=str(row[2].value),
            source=row[3],
            prompt_text=first_user_text(row[4] or []),
            responses=row[5],
        )
        for row in rows[:limit]
    ]
    return Page(items, items[-1].id if more else None)


def iter_prompts(
    db: Session, project_id: int, filters: PromptFilters, batch: int = MAX_PAGE_SIZE
) -> Iterator[PromptRow]:
    cursor: int | None = None
    while True:
        page = list_prompts(db, project_id, filters, cursor=cursor, limit=batch)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


LABEL_COLUMNS = (
    "kind",
    "id",
    "created_at",
    "task_id",
    "queue",
    "labeler",
    "source",
    "source_name",
    "prompt_id",
    "category",
    "prompt",
    "label",
    "flags",
    "guideline_version",
    "gold",
    "time_spent_seconds",
    "task_agreement",
    "skip_reason",
)
PROMPT_COLUMNS = ("id", "created_at", "category", "source", "prompt", "responses")


def _csv_line(values: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([cell(value) for value in values])
    return out.getvalue()


def labels_csv(db: Session, project_id: int, filters: LabelFilters) -> Iterator[str]:
    """Every label the filters select (all pages, not just the one shown), a line at a time;
    text columns hold the same first lines the browser shows."""
    # Checked before the first line, so a bad filter is an error answer, not a broken file.
    list_labels(db, project_id, filters, limit=1)

    def lines() -> Iterator[str]:
        yield _csv_line(LABEL_COLUMNS)
        for row in iter_labels(db, project_id, filters):
            yield _csv_line(
                (
                    row.kind,
                    row.id,
                    row.created_at.isoformat(),
                    row.task_id,
                    row.queue_name,
                    row.labeler,
                    row.source,
                    row.source_name,
                    row.prompt_id,
                    row.category,
                    row.prompt_text,
                    row.label_text,
                    " ".join(row.flags),
                    row.guideline_version,
                    row.gold,
                    row.time_spent_seconds,
                    row.task_agreement,
                    row.skip_reason,
                )
            )

    return lines()


def prompts_csv(db: Session, project_id: int, filters: PromptFilters) -> Iterator[str]:
    list_prompts(db, project_id, filters, limit=1)

    def lines() -> Iterator[str]:
        yield _csv_line(PROMPT_COLUMNS)
        for row in iter_prompts(db, project_id, filters):
            yield _csv_line(
                (
                    row.id,
                    row.created_at.isoformat(),
                    row.category,
                    row.source,
                    row.prompt_text,
                    row.responses,
                )
            )

    return lines()
