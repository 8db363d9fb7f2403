"""Rewrites ("edit as a new candidate"): while comparing, a labeler may write a better version
of a shown response.

Each rewrite becomes a human response to the prompt (its parent is the original), so later
comparison tasks of that prompt can show it, and a two-item comparison of its own, "rewrite ≻
original", with its pair. That comparison has no task, so it stays out of agreement and
overlap, and links to the comparison it was made in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Pair,
    Response,
    ResponseSource,
    User,
)
from app.schemas.labeling import Rewrite

SOURCE_NAME = "rewrite"


def check_rewrites(rewrites: Sequence[Rewrite], shown: Mapping[int, str | None]) -> None:
    """Before anything is written: each names a shown response (`shown`: id to content) and
    changes it."""
    for index, rewrite in enumerate(rewrites):
        if rewrite.response_id not in shown:
            raise InvalidInput(
                f"response {rewrite.response_id} is not one of this task's responses",
                field=f"rewrites.{index}.response_id",
            )
        original = shown[rewrite.response_id] or ""
        if rewrite.content.strip() == original.strip():
            raise InvalidInput(
                f"the rewrite of response {rewrite.response_id} is the same as the original",
                field=f"rewrites.{index}.content",
            )


def add_rewrites(
    db: Session,
    comparison: Comparison,
    rewrites: Sequence[Rewrite],
    labeler: User,
) -> list[int]:
    """Adds each rewrite's response, comparison and pair to the caller's transaction; returns
    the new response ids in the order given."""
    created = []
    for rewrite in rewrites:
        response = Response(
            prompt_id=comparison.prompt_id,
            content=rewrite.content,
            source=ResponseSource.human,
            author_id=labeler.id,
            parent_id=rewrite.response_id,
        )
        judged = Comparison(
            task_id=None,
            assignment_id=None,
            prompt_id=comparison.prompt_id,
            labeler_id=labeler.id,
            source=LabelSource.labeler,
            source_name=SOURCE_NAME,
            guideline_version_id=comparison.guideline_version_id,
            rewrite_in_comparison_id=comparison.id,
        )
        db.add_all([response, judged])
        db.flush()
        db.add_all(
            [
                ComparisonItem(
                    comparison_id=judged.id, response_id=response.id, score=None, rank=1, flags=[]
                ),
                ComparisonItem(
                    comparison_id=judged.id,
                    response_id=rewrite.response_id,
                    score=None,
                    rank=2,
                    flags=[],
                ),
                Pair(
                    comparison_id=judged.id,
                    prompt_id=comparison.prompt_id,
                    winner_response_id=response.id,
                    loser_response_id=rewrite.response_id,
                    margin=None,
                ),
            ]
        )
        created.append(response.id)
    return created


def rewrite_response_ids(db: Session, comparison_id: int) -> list[int]:
    """The responses the rewrites made in a comparison became, oldest first."""
    return list(
        db.scalars(
            select(ComparisonItem.response_id)
            .join(Comparison, Comparison.id == ComparisonItem.comparison_id)
            .where(Comparison.rewrite_in_comparison_id == comparison_id, ComparisonItem.rank == 1)
            .order_by(ComparisonItem.response_id)
        )
    )
