"""Which labels an admin should look at first: comparisons not yet reviewed whose task's
labelers disagree (the task's stored pairwise agreement, app/services/task_agreement.py, below
a threshold), that miss a gold task's known answer, or that were made too fast to have been
read.

All in SQL and paged by keyset (comparison id, oldest first), so a page costs the same at a
million comparisons as at ten: each reason is its own branch (the agreement index, the gold
tasks, the time spent), each branch gives its first `limit` ids after the cursor, and the
page is the first `limit` of their union. Whether a gold task's comparison misses its answer
is read from the answer's JSON in Python, for that page's gold candidates only; a page of gold
comparisons that all hit reads on to the next candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, select, union
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelReview,
    LabelSource,
    Queue,
    Task,
    TaskAgreement,
    User,
)
from app.schemas.reviews import ReviewQueueItem
from app.services.projects import get_project
from app.services.prompts import MAX_ID

AGREEMENT_BELOW = 0.6  # a task's pairwise agreement below this is worth a look
FASTER_THAN = 10.0  # a comparison made in less time than this (seconds) was hardly read
MAX_SECONDS = 86_400.0
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ReviewThresholds:
    """What picks a comparison. 0 turns a threshold off (no agreement is below 0, no
    comparison takes less than 0 seconds)."""

    agreement_below: float = AGREEMENT_BELOW
    faster_than: float = FASTER_THAN
    gold_misses: bool = True

    def check(self) -> None:
        if not 0 <= self.agreement_below <= 1:
            raise InvalidInput("agreement_below must be between 0 and 1", field="agreement_below")
        if not 0 <= self.faster_than <= MAX_SECONDS:
            raise InvalidInput(
                f"faster_than must be between 0 and {MAX_SECONDS:.0f} seconds",
                field="faster_than",
            )


@dataclass(frozen=True)
class ReviewPage:
    items: list[ReviewQueueItem]
    # The id to pass as `cursor` for the next page; None on the last page.
    next_cursor: int | None


def review_queue(
    db: Session,
    project_id: int,
    thresholds: ReviewThresholds = ReviewThresholds(),
    *,
    cursor: int | None = None,
    limit: int = PAGE_SIZE,
) -> ReviewPage:
    """Unreviewed labeler comparisons of the project's tasks that a threshold picks, each with
    why, oldest first, after `cursor` (a comparison id)."""
    get_project(db, project_id)
    thresholds.check()
    if cursor is not None and not 1 <= cursor <= MAX_ID:
        raise InvalidInput(
            "cursor must be an id from a previous page's next_cursor", field="cursor"
        )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit")
    picked: list[ReviewQueueItem] = []
    after = cursor or 0
    while len(picked) <= limit:
        candidates = _candidate_ids(db, project_id, thresholds, after, limit + 1)
        if not candidates:
            break
        picked += _picked(db, candidates, thresholds)
        if len(candidates) < limit + 1:
            break
        after = candidates[-1]
    more = len(picked) > limit
    picked = picked[:limit]
    return ReviewPage(picked, picked[-1].comparison_id if more else None)


def _candidate_ids(
    db: Session, project_id: int, thresholds: ReviewThresholds, after: int, count: int
) -> list[int]:
    """The first `count` ids after `after` that some branch picks, ascending."""
    base = (
        select(Comparison.id)
        .join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(
            Queue.project_id == project_id,
            Comparison.id > after,
            Comparison.source == LabelSource.labeler,
            Comparison.rewrite_in_comparison_id.is_(None),
            ~exists().where(LabelReview.comparison_id == Comparison.id),
        )
    )
    conditions: list[ColumnElement[bool]] = []
    if thresholds.agreement_below > 0:
        conditions.append(
            Comparison.task_id.in_(
                select(TaskAgreement.task_id).where(TaskAgreement.rate < thresholds.agreement_below)
            )
        )
    if thresholds.faster_than > 0:
        conditions.append(Comparison.time_spent_seconds < thresholds.faster_than)
    if thresholds.gold_misses:
        conditions.append(Task.is_gold.is_(True) & Task.gold_answer.is_not(None))
    if not conditions:
        return []
    branches: list[Select[Any]] = [
        select(base.where(condition).order_by(Comparison.id).limit(count).subquery().c.id)
        for condition in conditions
    ]
    merged = union(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    return list(db.scalars(select(merged.c.id).order_by(merged.c.id).limit(count)))


def _picked(
    db: Session, candidate_ids: list[int], thresholds: ReviewThresholds
) -> list[ReviewQueueItem]:
    rows = db.execute(
        select(
            Comparison.id,
            Comparison.task_id,
            Comparison.labeler_id,
            User.username,
            Comparison.time_spent_seconds,
            Task.is_gold,
            Task.gold_answer,
            TaskAgreement.rate,
        )
        .join(Task, Task.id == Comparison.task_id)
        .join(User, User.id == Comparison.labeler_id)
        .outerjoin(TaskAgreement, TaskAgreement.task_id == Comparison.task_id)
        .where(Comparison.id.in_(candidate_ids))
        .order_by(Comparison.id)
    ).all()
    gold_ids = [row[0] for row in rows if thresholds.gold_misses and row[5] and row[6]]
    ranks: dict[int, dict[int, int | None]] = {}
    if gold_ids:
        for comparison_id, response_id, rank in db.execute(
            select(
                ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.rank
            ).where(ComparisonItem.comparison_id.in_(gold_ids))
        ):
            ranks.setdefault(comparison_id, {})[response_id] = rank
    picked = []
    for comparison_id, task_id, labeler_id, username, seconds, _, gold, rate in rows:
        reasons = []
        if rate is not None and rate < thresholds.agreement_below:
            reasons.append("low agreement")
        if comparison_id in ranks and misses_gold(ranks[comparison_id], gold):
            reasons.append("gold miss")
        if seconds is not None and seconds < thresholds.faster_than:
            reasons.append("fast")
        if reasons:
            picked.append(
                ReviewQueueItem(
                    comparison_id=comparison_id,
                    task_id=task_id,
                    labeler_id=labeler_id,
                    labeler=username,
                    time_spent_seconds=seconds,
                    task_agreement=rate,
                    reasons=reasons,
                )
            )
    return picked


def misses_gold(ranks: dict[int, int | None], gold: dict) -> bool:
    """Whether a comparison orders any pair the gold ranking orders the other way, or ties
    it, or leaves it unranked (as gold accuracy counts a labeler tie as wrong)."""
    groups = gold.get("ranking") or []
    for better_index, better in enumerate(groups):
        for worse in groups[better_index + 1 :]:
            for winner in better:
                for loser in worse:
                    if winner not in ranks or loser not in ranks:
                        continue
                    a, b = ranks[winner], ranks[loser]
                    if a is None or b is None or a >= b:
                        return True
    return False
