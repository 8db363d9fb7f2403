"""Task view and label review pages: staff compare a task's labels, or look at one comparison
(an imported one has no task); admins accept, reject (with a reason) or send a task back for
another label. The review queue page picks labels by thresholds the admin sets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError, InvalidInput, NotFound
from app.models import Comparison, Demonstration, User
from app.schemas import common
from app.schemas.reviews import MAX_REASON, ReviewCreate
from app.services import reviews
from app.services.comparison_view import comparison_view
from app.services.prompts import get_project_checked, storable_id
from app.services.review_queue import (
    AGREEMENT_BELOW,
    FASTER_THAN,
    ReviewThresholds,
    review_queue,
)
from app.services.task_view import task_view
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

FormText = Annotated[common.Text, Form(max_length=MAX_REASON)]
Parsed = TypeVar("Parsed")


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


def _comparison_page(
    request: Request,
    db: SessionDep,
    user: User,
    comparison_id: int,
    *,
    errors: dict[str, str] | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "reviews/comparison.html",
        {"view": comparison_view(db, comparison_id), "errors": errors or {}, "reason": reason},
        user=user,
        status_code=status_code,
    )


@router.get("/comparisons/{comparison_id}")
def comparison_page(
    request: Request, db: SessionDep, user: WebStaff, comparison_id: int
) -> Response:
    return _comparison_page(request, db, user, comparison_id)


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
    if label is None:
        raise NotFound(f"no comparison with id {comparison_id}")
    if label.task_id is None:
        # An imported comparison (or a rewrite's): reviewed from its own page.
        return _review_alone(request, db, admin, label.id, verdict, reason)
    return _review(request, db, admin, label.task_id, f"comparison-{label.id}", verdict, reason)


def _review_alone(
    request: Request, db: SessionDep, admin: User, comparison_id: int, verdict: str, reason: str
) -> Response:
    try:
        data = ReviewCreate(verdict=verdict.strip(), reason=reason)  # type: ignore[arg-type]
        reviews.review_comparison(db, comparison_id, admin, data)
    except (ValidationError, DomainError) as error:
        db.rollback()
        return _comparison_page(
            request,
            db,
            admin,
            comparison_id,
            errors=form_errors(error),
            reason=reason,
            status_code=error.status_code if isinstance(error, DomainError) else 422,
        )
    return redirect(
        request,
        f"/comparisons/{comparison_id}",
        notice=f"The comparison {comparison_id} is {data.verdict.value}.",
    )


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
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    agreement_below: common.Text = "",
    faster_than: common.Text = "",
    gold_misses: common.Text = "",
    cursor: common.Text = "",
) -> Response:
    project = get_project_checked(db, project_id)
    values = {
        "agreement_below": agreement_below.strip() or f"{AGREEMENT_BELOW:g}",
        "faster_than": faster_than.strip() or f"{FASTER_THAN:g}",
        "gold_misses": gold_misses.strip() or "yes",
    }
    context = {
        "project": project,
        "values": values,
        "query": urlencode(values),
        "page": None,
        "error": None,
        "first_page": not cursor.strip(),
    }
    try:
        thresholds = ReviewThresholds(
            agreement_below=_parse("agreement below", values["agreement_below"], float),
            faster_than=_parse("faster than", values["faster_than"], float),
            gold_misses=_parse("gold misses", values["gold_misses"], _yes_no),
        )
        after = _parse("cursor", cursor, int) if cursor.strip() else None
        context["page"] = review_queue(db, project_id, thresholds, cursor=after)
    except InvalidInput as error:
        context["error"] = error.message
        return render(request, "reviews/queue.html", context, user=user, status_code=422)
    return render(request, "reviews/queue.html", context, user=user)


def _parse(field: str, value: str, convert: Callable[[str], Parsed]) -> Parsed:
    try:
        return convert(value.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a valid value") from None


def _yes_no(value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(value)
    return value == "yes"
