"""One comparison on its own, for review: what an imported comparison (which has no task, so
no task page) or any other comparison says about each response, and its review."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    LabelReview,
    Project,
    Prompt,
    Response,
    User,
)
from app.services.prompts import storable_id


@dataclass(frozen=True)
class JudgedResponse:
    response: Response
    item: ComparisonItem


@dataclass(frozen=True)
class ComparisonView:
    comparison: Comparison
    project: Project
    prompt: Prompt
    # Best ranked first (unranked last), then by response id.
    responses: list[JudgedResponse]
    labeler: str | None
    review: LabelReview | None
    reviewer: str | None


def comparison_view(db: Session, comparison_id: int) -> ComparisonView:
    comparison = db.get(Comparison, comparison_id) if storable_id(comparison_id) else None
    if comparison is None:
        raise NotFound(f"no comparison with id {comparison_id}")
    prompt = db.get(Prompt, comparison.prompt_id)
    assert prompt is not None  # a foreign key
    project = db.get(Project, prompt.project_id)
    assert project is not None
    judged = [
        JudgedResponse(response, item)
        for item, response in db.execute(
            select(ComparisonItem, Response)
            .join(Response, Response.id == ComparisonItem.response_id)
            .where(ComparisonItem.comparison_id == comparison.id)
        ).all()
    ]
    judged.sort(
        key=lambda found: (found.item.rank is None, found.item.rank or 0, found.response.id)
    )
    labeler = db.get(User, comparison.labeler_id) if comparison.labeler_id else None
    review = db.scalar(select(LabelReview).where(LabelReview.comparison_id == comparison.id))
    reviewer = db.get(User, review.reviewer_id) if review else None
    return ComparisonView(
        comparison=comparison,
        project=project,
        prompt=prompt,
        responses=judged,
        labeler=labeler.username if labeler else None,
        review=review,
        reviewer=reviewer.username if reviewer else None,
    )
