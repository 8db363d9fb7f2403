"""/admin/task-events: the page where admins see what Celery tasks did."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.deps import SessionDep, WebAdmin, read_only
from app.schemas import common
from app.services import task_events
from app.web.rendering import render

router = APIRouter(prefix="/admin/task-events")


@router.get("")
@read_only
def task_events_page(
    request: Request,
    db: SessionDep,
    user: WebAdmin,
    task_name: Annotated[common.Text, Query(max_length=200)] = "",
    state: Annotated[common.Text, Query(max_length=20)] = "",
) -> Response:
    events = task_events.list_events(db, task_name=task_name or None, state=state or None)
    return render(
        request,
        "admin/task_events.html",
        {
            "events": events,
            "task_names": task_events.task_names(db),
            "states": task_events.STATES,
            "chosen_task_name": task_name,
            "chosen_state": state,
        },
        user=user,
    )
