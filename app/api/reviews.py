"""/api/v1: reviews of labels (admins) and the review queue (staff), over the same services
as the task and review pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiStaff, SessionDep
from app.schemas.reviews import ReviewCreate, ReviewQueuePage, ReviewRead, SentBack
from app.services import reviews
from app.services.prompts import MAX_ID
from app.services.review_queue import (
    AGREEMENT_BELOW,
    FASTER_THAN,
    MAX_PAGE_SIZE,
    MAX_SECONDS,
    PAGE_SIZE,
    ReviewThresholds,
    review_queue,
)

router = APIRouter(responses=STANDARD_ERRORS, tags=["reviews"])


@router.post(
    "/comparisons/{comparison_id}/review",
    response_model=ReviewRead,
    status_code=status.HTTP_201_CREATED,
)
def review_comparison(
    comparison_id: int, data: ReviewCreate, db: SessionDep, admin: ApiAdmin
) -> ReviewRead:
    """Accept or reject (with a reason, shown to the labeler) a comparison; a second review
    replaces the first. A rejected comparison stays stored but leaves snapshots by default."""
    return ReviewRead.model_validate(reviews.review_comparison(db, comparison_id, admin, data))


@router.post(
    "/demonstrations/{demonstration_id}/review",
    response_model=ReviewRead,
    status_code=status.HTTP_201_CREATED,
)
def review_demonstration(
    demonstration_id: int, data: ReviewCreate, db: SessionDep, admin: ApiAdmin
) -> ReviewRead:
    """Accept or reject (with a reason) a demonstration, as for comparisons."""
    found = reviews.review_demonstration(db, demonstration_id, admin, data)
    return ReviewRead.model_validate(found)


@router.post("/tasks/{task_id}/send-back", response_model=SentBack)
def send_back(task_id: int, db: SessionDep, _: ApiAdmin) -> SentBack:
    """Ask for one more label on the task: its overlap grows by one."""
    task = reviews.send_back(db, task_id)
    return SentBack(task_id=task.id, overlap=task.overlap)


@router.get("/projects/{project_id}/review-queue", response_model=ReviewQueuePage)
def list_review_queue(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    agreement_below: Annotated[
        float, Query(ge=0, le=1, description="the task's pairwise agreement below this; 0: off")
    ] = AGREEMENT_BELOW,
    faster_than: Annotated[
        float, Query(ge=0, le=MAX_SECONDS, description="made in fewer seconds than this; 0: off")
    ] = FASTER_THAN,
    gold_misses: Annotated[bool, Query(description="comparisons that miss a gold answer")] = True,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE,
) -> ReviewQueuePage:
    """Unreviewed comparisons worth a look, oldest first: the task's agreement below
    `agreement_below`, a gold miss, or made in under `faster_than` seconds; each says why."""
    thresholds = ReviewThresholds(agreement_below, faster_than, gold_misses)
    page = review_queue(db, project_id, thresholds, cursor=cursor, limit=limit)
    return ReviewQueuePage(items=page.items, next_cursor=page.next_cursor)
