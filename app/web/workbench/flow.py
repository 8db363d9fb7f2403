"""What every workbench route shares: who may call, how a task is shown, what comes next."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.deps import web_role
from app.errors import Conflict
from app.models import Assignment, Queue, Role, User
from app.services import assignments
from app.web.rendering import redirect, render
from app.web.workbench.context import TaskView, task_view
from app.web.workbench.forms import FormValues

WebLabeler = Annotated[User, Depends(web_role(Role.labeler))]

TASK_TEMPLATE = "workbench/task.html"
FINISHED_TEMPLATE = "workbench/finished.html"


async def posted_values(request: Request) -> FormValues:
    """The posted form as lists per name (field names depend on the task, so no Form(...))."""
    form = await request.form()
    return FormValues.from_pairs(form.multi_items())


PostedValues = Annotated[FormValues, Depends(posted_values)]


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def task_url(assignment_id: int) -> str:
    return f"/work/assignments/{assignment_id}"


def show_task(request: Request, view: TaskView, user: User, *, status_code: int = 200) -> Response:
    """The whole page, or for htmx only its workbench block (the header and scripts stay)."""
    return render(
        request,
        TASK_TEMPLATE,
        view.template_context(),
        block="workbench" if is_htmx(request) else None,
        status_code=status_code,
        user=user,
        no_store=True,
    )


def next_assignment(db: Session, labeler: User, queue_id: int) -> Assignment | None:
    """A task of this queue the labeler already holds comes first, so a submit that is resent
    after a lost answer opens the same next task instead of leasing one more."""
    held = assignments.active_assignments(db, labeler, queue_id)
    if held:
        return held[0]
    return assignments.lease_next_task(db, queue_id, labeler)


def open_next(request: Request, db: Session, labeler: User, queue: Queue, done: str) -> Response:
    """After a submit or skip: the next task of the queue, or word that it is finished."""
    try:
        upcoming = next_assignment(db, labeler, queue.id)
        reason = None
    except Conflict as error:
        # A queue paused meanwhile: the work is saved, there is just nothing more to take.
        upcoming, reason = None, error.message
    if upcoming is None:
        if not is_htmx(request):
            return redirect(request, "/", notice=f"{done} {reason or _finished(queue)}")
        return render(
            request,
            FINISHED_TEMPLATE,
            {"queue": queue, "flash": done, "reason": reason or _finished(queue)},
            block="workbench",
            user=labeler,
        )
    if not is_htmx(request):
        return redirect(request, task_url(upcoming.id), notice=done)
    view = task_view(request, db, upcoming, labeler, flash=done)
    response = show_task(request, view, labeler)
    response.headers["HX-Push-Url"] = task_url(upcoming.id)
    return response


def _finished(queue: Queue) -> str:
    return f"There is no task left for you in {queue.name}. Thank you!"
