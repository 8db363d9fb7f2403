"""/api/v1: reviews of labels (admins) and the review queue (staff), over the same services
as the task and review pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiStaff, SessionDep
from app.schemas.reviews import ReviewCreate, ReviewQueueItem, ReviewRead, SentBack
from app.services import reviews
from app.services.review_queue import FAST_SECONDS, LIMIT, LOW_AGREEMENT, review_queue

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


@router.get("/projects/{project_id}/review-queue", response_model=list[ReviewQueueItem])
def list_review_queue(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    low_agreement: Annotated[float, Query(ge=0, le=1)] = LOW_AGREEMENT,
    fast_seconds: Annotated[float, Query(ge=0, le=86_400)] = FAST_SECONDS,
    limit: Annotated[int, Query(ge=1, le=LIMIT)] = LIMIT,
) -> list[ReviewQueueItem]:
    """Unreviewed comparisons worth a look: the task's agreement below `low_agreement`, a gold
    miss, or made in under `fast_seconds`; each says why."""
    return review_queue(
        db, project_id, low_agreement=low_agreement, fast_seconds=fast_seconds, limit=limit
    )
