"""Opening tasks: start a queue, show an assignment, take an expired one again, the guideline
read mark, and the demonstration preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.deps import SessionDep, WebUser
from app.models import Queue
from app.models.base import utcnow
from app.schemas import common
from app.services import assignments, guideline_reads, projects
from app.web.rendering import redirect, render
from app.web.workbench.context import lease_state, task_view
from app.web.workbench.flow import (
    FINISHED_TEMPLATE,
    PostedValues,
    WebLabeler,
    is_htmx,
    next_assignment,
    show_task,
    task_url,
)
from app.web.workbench.forms import turn_roles, written_turns

router = APIRouter()

MAX_PREVIEW_CHARS = 200_000


@router.post("/queues/{queue_id}/start")
def start(request: Request, db: SessionDep, labeler: WebLabeler, queue_id: int) -> Response:
    found = next_assignment(db, labeler, queue_id)
    if found is None:
        # lease_next_task has checked the queue is open to this labeler.
        queue = db.get(Queue, queue_id)
        assert queue is not None
        return render(
            request,
            FINISHED_TEMPLATE,
            {"queue": queue, "reason": f"There is no task left for you in {queue.name}."},
            user=labeler,
        )
    return redirect(request, task_url(found.id))


@router.get("/assignments/{assignment_id}")
def show(request: Request, db: SessionDep, labeler: WebLabeler, assignment_id: int) -> Response:
    assignment = assignments.get_own_assignment(db, assignment_id, labeler)
    return show_task(request, task_view(request, db, assignment, labeler), labeler)


@router.post("/assignments/{assignment_id}/renew")
def renew(request: Request, db: SessionDep, labeler: WebLabeler, assignment_id: int) -> Response:
    assignment = assignments.get_own_assignment(db, assignment_id, labeler)
    if lease_state(assignment, utcnow()) == "open":
        # The page's clock ran ahead of the server's: nothing to renew, carry on.
        return redirect(request, task_url(assignment.id), notice="Your lease is still running.")
    renewed = assignments.renew_assignment(db, assignment_id, labeler)
    return redirect(request, task_url(renewed.id), notice="The task is yours again.")


@router.post("/projects/{project_id}/guideline/read")
def mark_guideline_read(
    request: Request,
    db: SessionDep,
    labeler: WebLabeler,
    project_id: int,
    next_url: Annotated[common.Text, Form(alias="next", max_length=200)] = "/",
) -> Response:
    projects.readable_project(db, project_id, labeler)
    version = guideline_reads.mark_read(db, labeler, project_id)
    said = f"Marked version {version.version} of the guideline as read." if version else ""
    if is_htmx(request):
        return render(
            request,
            "workbench/_guideline.html",
            {"read_notice": said},
            block="guideline_banner",
            user=labeler,
        )
    # Only a path inside the workbench, so the form cannot send anyone elsewhere.
    target = next_url if next_url.startswith("/work/") and "//" not in next_url else "/"
    return redirect(request, target, notice=said or None)


@router.post("/preview")
def preview(request: Request, user: WebUser, values: PostedValues) -> Response:
    """The demonstration's turns as they will read, rendered and sanitized on the server."""
    texts = written_turns(values)
    if sum(len(text) for text in texts) > MAX_PREVIEW_CHARS:
        texts = ["(too long to preview; it is still saved and can be submitted)"]
    messages = [
        {"role": role, "content": text}
        for role, text in zip(turn_roles(len(texts)), texts, strict=True)
        if text.strip()
    ]
    return render(
        request, "workbench/_demonstration.html", {"preview": messages}, block="preview", user=user
    )
