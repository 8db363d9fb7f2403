"""Taking work back from the page: autosaved drafts, submitted labels and skips.

A submit answers with the next task (for htmx, only the workbench block and an HX-Push-Url
header), or re-shows the form with the labeler's input and what is wrong. A resent submit
carries the same idempotency key, so it is answered as a success without a second label."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.deps import SessionDep
from app.errors import DomainError, InvalidInput
from app.models import Assignment, QueueKind, User
from app.schemas.labeling import DraftSave, SkipSubmit
from app.services import assignments, drafts
from app.web.workbench.context import TaskView, after_submit_words, task_view
from app.web.workbench.flow import PostedValues, WebLabeler, open_next, show_task
from app.web.workbench.forms import FormValues, parse_comparison, parse_demonstration

router = APIRouter()

EXPIRED = "Your lease on this task expired, so it was not submitted. Your work is kept: "
DONE = "Submitted."
SKIPPED = "Skipped. The task goes back to the queue for others."


@router.post("/assignments/{assignment_id}/draft")
def save_draft(
    db: SessionDep, labeler: WebLabeler, assignment_id: int, data: DraftSave
) -> JSONResponse:
    """Autosave from the page: JSON in, the new revision out (JSON errors too, for the script)."""
    try:
        draft = drafts.save_draft(db, assignment_id, labeler, data.content, data.base_revision)
    except DomainError as error:
        return JSONResponse(
            {"error": error.code, "message": error.message}, status_code=error.status_code
        )
    return JSONResponse({"revision": draft.revision, "saved_at": draft.updated_at.isoformat()})


def _checked_key(view: TaskView, values: FormValues) -> None:
    sent = values.get("idempotency_key")
    if sent and sent != view.idempotency_key:
        raise InvalidInput("this form belongs to another task; reload the page")


def _refused(
    request: Request,
    db: SessionDep,
    assignment: Assignment,
    labeler: User,
    values: FormValues,
    error: DomainError,
) -> Response:
    """A submit the service turned down: the form again, input intact, saying why."""
    message = error.message
    if isinstance(error, assignments.LeaseExpired):
        try:
            drafts.save_draft(db, assignment.id, labeler, values.as_draft())
            message = EXPIRED + "take the task again to submit it."
        except DomainError as draft_error:
            message = EXPIRED.replace("Your work is kept: ", "") + (
                f"Your input is still on this page, but could not be saved: {draft_error.message}"
            )
    view = task_view(request, db, assignment, labeler, values=values, errors={"form": message})
    return show_task(request, view, labeler, status_code=error.status_code)


def _kind_checked(view: TaskView, kind: QueueKind) -> None:
    if view.queue.kind != kind:
        raise InvalidInput(f"this is a {view.queue.kind.value} task")


@router.post("/assignments/{assignment_id}/comparison")
def submit_comparison(
    request: Request,
    db: SessionDep,
    labeler: WebLabeler,
    assignment_id: int,
    values: PostedValues,
) -> Response:
    assignment = assignments.get_own_assignment(db, assignment_id, labeler)
    view = task_view(request, db, assignment, labeler, values=values)
    _kind_checked(view, QueueKind.comparison)
    _checked_key(view, values)
    parsed = parse_comparison(values, view.responses, [flag["key"] for flag in view.flags])
    if parsed.data is None or parsed.warnings:
        view.errors, view.warnings = parsed.errors, parsed.warnings
        return show_task(request, view, labeler, status_code=422)
    data = parsed.data.model_copy(update={"idempotency_key": view.idempotency_key})
    queue = view.queue
    try:
        done = assignments.submit_comparison(db, assignment.id, labeler, data)
    except DomainError as error:
        return _refused(request, db, assignment, labeler, values, error)
    # The judge's ranking, once the label is in: "after" shows it here for the first time.
    revealed = (
        after_submit_words(db, done.label_id, view.responses)
        if done.suggestion_comparison_id is not None
        else ""
    )
    return open_next(request, db, labeler, queue, f"{DONE} {revealed}".strip())


@router.post("/assignments/{assignment_id}/demonstration")
def submit_demonstration(
    request: Request,
    db: SessionDep,
    labeler: WebLabeler,
    assignment_id: int,
    values: PostedValues,
) -> Response:
    assignment = assignments.get_own_assignment(db, assignment_id, labeler)
    view = task_view(request, db, assignment, labeler, values=values)
    _kind_checked(view, QueueKind.demonstration)
    _checked_key(view, values)
    parsed = parse_demonstration(values, view.draft_response)
    if parsed.data is None:
        view.errors = parsed.errors
        return show_task(request, view, labeler, status_code=422)
    data = parsed.data.model_copy(update={"idempotency_key": view.idempotency_key})
    queue = view.queue
    try:
        assignments.submit_demonstration(db, assignment.id, labeler, data)
    except DomainError as error:
        return _refused(request, db, assignment, labeler, values, error)
    return open_next(request, db, labeler, queue, DONE)


@router.post("/assignments/{assignment_id}/skip")
def skip(
    request: Request,
    db: SessionDep,
    labeler: WebLabeler,
    assignment_id: int,
    values: PostedValues,
) -> Response:
    assignment = assignments.get_own_assignment(db, assignment_id, labeler)
    try:
        data = SkipSubmit(reason=values.get("reason"), note=values.get("skip_note"))
    except ValidationError as error:
        problems = {str(problem["loc"][-1]) if problem["loc"] else "" for problem in error.errors()}
        said = "; ".join(problem["msg"].removeprefix("Value error, ") for problem in error.errors())
        message = (
            "Choose a reason for skipping."
            if "reason" in problems
            else said[:1].upper() + said[1:] + "."
        )
        view = task_view(request, db, assignment, labeler)
        view.skip_values, view.errors = values, {"skip": message}
        return show_task(request, view, labeler, status_code=422)
    view = task_view(request, db, assignment, labeler)
    queue = view.queue
    try:
        assignments.skip_assignment(db, assignment.id, labeler, data)
    except DomainError as error:
        view = task_view(request, db, assignment, labeler)
        view.skip_values, view.errors = values, {"skip": error.message}
        return show_task(request, view, labeler, status_code=error.status_code)
    return open_next(request, db, labeler, queue, SKIPPED)
