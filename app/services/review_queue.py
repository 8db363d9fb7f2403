"""Which labels an admin should look at first: comparisons not yet reviewed whose task's
labelers disagree, that miss a gold task's known answer, or that were made too fast to have
been read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelReview,
    LabelSource,
    Queue,
    Task,
    User,
)
from app.schemas.reviews import ReviewQueueItem
from app.services.agreement.loading import load_ratings
from app.services.agreement.metrics import pairwise_agreement_by
from app.services.agreement.ratings import Ratings
from app.services.projects import get_project

LOW_AGREEMENT = 0.6  # a task's pairwise agreement below this is worth a look
FAST_SECONDS = 10.0  # a comparison made in less time than this was hardly read
LIMIT = 200


def review_queue(
    db: Session,
    project_id: int,
    *,
    low_agreement: float = LOW_AGREEMENT,
    fast_seconds: float = FAST_SECONDS,
    limit: int = LIMIT,
) -> list[ReviewQueueItem]:
    """Unreviewed labeler comparisons of the project's tasks, each with why it was picked,
    lowest comparison id first, at most `limit`."""
    get_project(db, project_id)
    ratings = load_ratings(db, project_ids=[project_id])
    by_task = pairwise_agreement_by(
        Ratings(
            ratings.task,
            ratings.labeler,
            ratings.response,
            ratings.rank,
            ratings.score,
            {"task": ratings.task},
        ),
        "task",
    )
    disagreeing = {
        task
        for task, found in by_task.items()
        if found.rate is not None and found.rate < low_agreement
    }
    rows = db.execute(
        select(
            Comparison.id,
            Comparison.task_id,
            Comparison.labeler_id,
            User.username,
            Comparison.time_spent_seconds,
            Task.is_gold,
            Task.gold_answer,
        )
        .join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .join(User, User.id == Comparison.labeler_id)
        .outerjoin(LabelReview, LabelReview.comparison_id == Comparison.id)
        .where(
            Queue.project_id == project_id,
            Comparison.source == LabelSource.labeler,
            Comparison.rewrite_in_comparison_id.is_(None),
            LabelReview.id.is_(None),
        )
        .order_by(Comparison.id)
    ).all()
    gold_ids = [row[0] for row in rows if row[5] and row[6]]
    ranks: dict[int, dict[int, int | None]] = {}
    if gold_ids:
        for comparison_id, response_id, rank in db.execute(
            select(
                ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.rank
            ).where(ComparisonItem.comparison_id.in_(gold_ids))
        ):
            ranks.setdefault(comparison_id, {})[response_id] = rank
    picked = []
    for comparison_id, task_id, labeler_id, username, seconds, is_gold, gold in rows:
        reasons = []
        if task_id in disagreeing:
            reasons.append("low agreement")
        if is_gold and gold and misses_gold(ranks.get(comparison_id, {}), gold):
            reasons.append("gold miss")
        if seconds is not None and seconds < fast_seconds:
            reasons.append("fast")
        if reasons:
            picked.append(
                ReviewQueueItem(
                    comparison_id=comparison_id,
                    task_id=task_id,
                    labeler_id=labeler_id,
                    labeler=username,
                    time_spent_seconds=seconds,
                    reasons=reasons,
                )
            )
            if len(picked) >= limit:
                break
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
