"""Admins' reviews of labels: accept, reject with a reason, or send a task back for one more
label; and what a rejection changes elsewhere (snapshots, the labeler's page).

A rejected label is never deleted or altered: the review row records the verdict beside it,
so a rejection can be taken back by accepting the label again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Comparison,
    Demonstration,
    LabelReview,
    ReviewVerdict,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.reviews import ReviewCreate
from app.services.prompts import storable_id


def review_comparison(
    db: Session, comparison_id: int, reviewer: User, data: ReviewCreate
) -> LabelReview:
    comparison = db.get(Comparison, comparison_id) if storable_id(comparison_id) else None
    if comparison is None:
        raise NotFound(f"no comparison with id {comparison_id}")
    return _review(db, reviewer, data, comparison_id=comparison.id)


def review_demonstration(
    db: Session, demonstration_id: int, reviewer: User, data: ReviewCreate
) -> LabelReview:
    found = db.get(Demonstration, demonstration_id) if storable_id(demonstration_id) else None
    if found is None:
        raise NotFound(f"no demonstration with id {demonstration_id}")
    return _review(db, reviewer, data, demonstration_id=found.id)


def _review(
    db: Session,
    reviewer: User,
    data: ReviewCreate,
    *,
    comparison_id: int | None = None,
    demonstration_id: int | None = None,
) -> LabelReview:
    reason = data.reason.strip()
    if data.verdict == ReviewVerdict.rejected and not reason:
        raise InvalidInput("say why the label is rejected: the labeler is shown it", field="reason")
    column = LabelReview.comparison_id if comparison_id else LabelReview.demonstration_id
    review = db.scalar(select(LabelReview).where(column == (comparison_id or demonstration_id)))
    if review is None:
        review = LabelReview(comparison_id=comparison_id, demonstration_id=demonstration_id)
        db.add(review)
    review.verdict = data.verdict
    review.reason = reason
    review.reviewer_id = reviewer.id
    review.reviewed_at = utcnow()
    db.commit()
    return review


def send_back(db: Session, task_id: int) -> Task:
    """Ask for one more label on a task: its overlap grows by one, so the next labeler who has
    not judged it is leased it (the way adaptive overlap asks on disagreement)."""
    task = db.get(Task, task_id) if storable_id(task_id) else None
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    if task.retired_at is not None:
        raise Conflict(f"task {task_id} is retired: nobody can be leased it")
    task.overlap += 1
    db.commit()
    return task


def comparison_not_rejected() -> ColumnElement[bool]:
    """WHERE condition: the comparison, and the comparison a rewrite was made in, are not
    rejected (a rewrite is a label of the same judgement)."""
    return ~exists().where(
        LabelReview.verdict == ReviewVerdict.rejected,
        or_(
            LabelReview.comparison_id == Comparison.id,
            LabelReview.comparison_id == Comparison.rewrite_in_comparison_id,
        ),
    )


def demonstration_not_rejected() -> ColumnElement[bool]:
    return ~exists().where(
        LabelReview.verdict == ReviewVerdict.rejected,
        LabelReview.demonstration_id == Demonstration.id,
    )


@dataclass(frozen=True)
class RejectedLabel:
    kind: str  # "comparison" or "demonstration"
    label_id: int
    task_id: int | None
    reason: str
    reviewed_at: datetime


def rejected_labels_of(db: Session, labeler_id: int) -> list[RejectedLabel]:
    """A labeler's rejected labels, newest review first, with the reasons."""
    comparisons = db.execute(
        select(Comparison.id, Comparison.task_id, LabelReview.reason, LabelReview.reviewed_at)
        .join(LabelReview, LabelReview.comparison_id == Comparison.id)
        .where(Comparison.labeler_id == labeler_id, LabelReview.verdict == ReviewVerdict.rejected)
    ).all()
    demonstrations = db.execute(
        select(Demonstration.id, Demonstration.task_id, LabelReview.reason, LabelReview.reviewed_at)
        .join(LabelReview, LabelReview.demonstration_id == Demonstration.id)
        .where(
            Demonstration.labeler_id == labeler_id,
            LabelReview.verdict == ReviewVerdict.rejected,
        )
    ).all()
    found = [RejectedLabel("comparison", *row) for row in comparisons] + [
        RejectedLabel("demonstration", *row) for row in demonstrations
    ]
    return sorted(found, key=lambda label: (label.reviewed_at, label.label_id), reverse=True)


def rejected_counts(db: Session, labeler_ids: list[int] | None = None) -> dict[int, int]:
    """Rejected labels (comparisons and demonstrations) per labeler."""
    counts: dict[int, int] = {}
    for label in (Comparison, Demonstration):
        key = LabelReview.comparison_id if label is Comparison else LabelReview.demonstration_id
        query = (
            select(label.labeler_id, func.count())
            .join(LabelReview, key == label.id)
            .where(LabelReview.verdict == ReviewVerdict.rejected, label.labeler_id.is_not(None))
            .group_by(label.labeler_id)
        )
        if labeler_ids is not None:
            query = query.where(label.labeler_id.in_(labeler_ids))
        for labeler_id, count in db.execute(query):
            counts[labeler_id] = counts.get(labeler_id, 0) + count
    return counts
