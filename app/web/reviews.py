"""Task view and label review pages: staff compare a task's labels; admins accept, reject
(with a reason) or send a task back for another label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError, NotFound
from app.models import Comparison, Demonstration, User
from app.schemas import common
from app.schemas.reviews import MAX_REASON, ReviewCreate
from app.services import reviews
from app.services.prompts import get_project_checked, storable_id
from app.services.review_queue import FAST_SECONDS, LOW_AGREEMENT, review_queue
from app.services.task_view import task_view
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

FormText = Annotated[common.Text, Form(max_length=MAX_REASON)]


def _task_page(
    request: Request,
    db: SessionDep,
    user: User,
    task_id: int,
    *,
    errors: dict[str, str] | None = None,
    failed_label: str = "",
    reason: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "reviews/task.html",
        {
            "view": task_view(db, task_id),
            "errors": errors or {},
            "failed_label": failed_label,
            "reason": reason,
        },
        user=user,
        status_code=status_code,
    )


@router.get("/tasks/{task_id}")
def task_page(request: Request, db: SessionDep, user: WebStaff, task_id: int) -> Response:
    return _task_page(request, db, user, task_id)


@router.post("/comparisons/{comparison_id}/review")
def review_comparison(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    comparison_id: int,
    verdict: FormText = "",
    reason: FormText = "",
) -> Response:
    label = db.get(Comparison, comparison_id) if storable_id(comparison_id) else None
    if label is None or label.task_id is None:
        raise NotFound(f"no comparison of a task with id {comparison_id}")
    return _review(request, db, admin, label.task_id, f"comparison-{label.id}", verdict, reason)


@router.post("/demonstrations/{demonstration_id}/review")
def review_demonstration(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    demonstration_id: int,
    verdict: FormText = "",
    reason: FormText = "",
) -> Response:
    label = db.get(Demonstration, demonstration_id) if storable_id(demonstration_id) else None
    if label is None or label.task_id is None:
        raise NotFound(f"no demonstration of a task with id {demonstration_id}")
    return _review(request, db, admin, label.task_id, f"demonstration-{label.id}", verdict, reason)


def _review(
    request: Request,
    db: SessionDep,
    admin: User,
    task_id: int,
    label: str,
    verdict: str,
    reason: str,
) -> Response:
    kind, label_id = label.split("-")
    try:
        data = ReviewCreate(verdict=verdict.strip(), reason=reason)  # type: ignore[arg-type]
        if kind == "comparison":
            reviews.review_comparison(db, int(label_id), admin, data)
        else:
            reviews.review_demonstration(db, int(label_id), admin, data)
    except (ValidationError, DomainError) as error:
        db.rollback()
        return _task_page(
            request,
            db,
            admin,
            task_id,
            errors=form_errors(error),
            failed_label=label,
            reason=reason,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(
        request, f"/tasks/{task_id}", notice=f"The {kind} {label_id} is {data.verdict.value}."
    )


@router.post("/tasks/{task_id}/send-back")
def send_back(request: Request, db: SessionDep, admin: WebAdmin, task_id: int) -> Response:
    try:
        task = reviews.send_back(db, task_id)
    except DomainError as error:
        if error.status_code == 404:
            raise
        return _task_page(
            request,
            db,
            admin,
            task_id,
            errors={"send_back": error.message},
            status_code=error.status_code,
        )
    return redirect(
        request,
        f"/tasks/{task.id}",
        notice=f"Task {task.id} asks for one more label (overlap {task.overlap}).",
    )


@router.get("/projects/{project_id}/review")
def review_queue_page(
    request: Request, db: SessionDep, user: WebStaff, project_id: int
) -> Response:
    project = get_project_checked(db, project_id)
    return render(
        request,
        "reviews/queue.html",
        {
            "project": project,
            "items": review_queue(db, project_id),
            "low_agreement": LOW_AGREEMENT,
            "fast_seconds": FAST_SECONDS,
        },
        user=user,
    )
