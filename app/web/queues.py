"""Queue pages: admins create, configure, staff and fill queues; researchers watch."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError, InvalidInput
from app.models import QueueKind, User
from app.schemas import common
from app.schemas.critique import SuggestionModeSet
from app.schemas.queues import QueueCreate, QueueUpdate
from app.services import projects, queue_tasks, queues, suggestions
from app.services import tasks as task_service
from app.services.prompts import MAX_ID, get_project_checked
from app.services.tasks import AddedTasks
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

TASKS_PER_PAGE = 50
ID_TOKEN = re.compile(r"^[0-9]{1,18}$")
SETTINGS_FIELDS = (
    "name",
    "overlap",
    "max_overlap",
    "disagreement_tau",
    "priority",
    "lease_seconds",
    "max_active_leases",
)

Text = Annotated[common.Text, Form(max_length=1000)]


def _settings_values(queue: Any) -> dict[str, str]:
    values = {name: str(getattr(queue, name)) for name in SETTINGS_FIELDS}
    values["disagreement_tau"] = (
        "" if queue.disagreement_tau is None else values["disagreement_tau"]
    )
    values["open_to_all"] = "on" if queue.open_to_all else ""
    return values


def _settings_data(values: dict[str, str]) -> dict[str, Any]:
    """Form strings as the schema's fields: a blank τ means off, a blank max overlap means the
    same as overlap."""
    data: dict[str, Any] = {name: values[name].strip() for name in SETTINGS_FIELDS}
    data["disagreement_tau"] = data["disagreement_tau"] or None
    data["max_overlap"] = data["max_overlap"] or None
    data["open_to_all"] = values["open_to_all"] == "on"
    return data


def _ids(values: list[str] | str, what: str, field: str) -> list[int]:
    tokens = re.split(r"[\s,]+", values.strip()) if isinstance(values, str) else values
    ids = []
    for token in tokens:
        if not token:
            continue
        if not ID_TOKEN.match(token):
            raise InvalidInput(f"{token[:20]!r} is not a {what} id", field=field)
        ids.append(int(token))
    return ids


def _status(error: Exception) -> int:
    return error.status_code if isinstance(error, DomainError) else 422


# --- a project's queues ---------------------------------------------------------------------


def _list_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    found = queues.list_queues(db, project_id)
    defaults = {
        "name": "",
        "kind": QueueKind.comparison.value,
        "overlap": "1",
        "max_overlap": "",
        "disagreement_tau": "",
        "priority": "0",
        "lease_seconds": "1800",
        "max_active_leases": "3",
        "open_to_all": "on",
    }
    return render(
        request,
        "queues/list.html",
        {
            "project": project,
            "queues": found,
            "progress": {queue.id: queues.queue_progress(db, queue.id) for queue in found},
            "kinds": list(QueueKind),
            "values": values or defaults,
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


@router.get("/projects/{project_id}/queues")
def list_queues(request: Request, db: SessionDep, user: WebStaff, project_id: int) -> Response:
    return _list_page(request, db, user, project_id)


@router.post("/projects/{project_id}/queues")
def create_queue(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    project_id: int,
    name: Text = "",
    kind: Text = "",
    overlap: Text = "1",
    max_overlap: Text = "",
    disagreement_tau: Text = "",
    priority: Text = "0",
    lease_seconds: Text = "1800",
    max_active_leases: Text = "3",
    # A checkbox: absent when unticked.
    open_to_all: Text = "",
) -> Response:
    values = {
        "name": name,
        "kind": kind,
        "overlap": overlap,
        "max_overlap": max_overlap,
        "disagreement_tau": disagreement_tau,
        "priority": priority,
        "lease_seconds": lease_seconds,
        "max_active_leases": max_active_leases,
        "open_to_all": open_to_all,
    }
    get_project_checked(db, project_id)
    try:
        data = QueueCreate(kind=kind.strip(), **_settings_data(values))
        queue = queues.create_queue(db, project_id, data, admin)
    except (ValidationError, DomainError) as error:
        return _list_page(
            request,
            db,
            admin,
            project_id,
            values=values,
            errors=form_errors(error),
            status_code=_status(error),
        )
    return redirect(request, f"/queues/{queue.id}", notice=f"Created {queue.name}.")


# --- one queue ------------------------------------------------------------------------------


def _detail_page(
    request: Request,
    db: Session,
    user: User,
    queue_id: int,
    *,
    offset: int = 0,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    prompt_ids: common.Text = "",
    selected: list[int] | None = None,
    status_code: int = 200,
) -> Response:
    queue = queues.get_queue(db, queue_id)
    tasks = task_service.list_tasks(db, queue_id, TASKS_PER_PAGE, offset)
    listed = queues.labeler_ids(db, queue_id)
    return render(
        request,
        "queues/detail.html",
        {
            "queue": queue,
            "project": projects.get_project(db, queue.project_id),
            "progress": queues.queue_progress(db, queue_id),
            "values": values or _settings_values(queue),
            "errors": errors or {},
            "labelers": queues.active_labelers(db),
            "listed": listed,
            "selected": set(listed if selected is None else selected),
            "prompt_ids": prompt_ids,
            "untasked": task_service.count_untasked_prompts(db, queue_id),
            "tasks": tasks,
            "task_responses": task_service.response_ids_by_task(db, [task.id for task in tasks]),
            "task_rows": queue_tasks.task_rows(db, [task.id for task in tasks]),
            "task_total": task_service.count_tasks(db, queue_id),
            "offset": offset,
            "per_page": TASKS_PER_PAGE,
            "suggestions": suggestions.queue_agreement(db, queue_id)
            if queue.kind == QueueKind.comparison
            else None,
        },
        user=user,
        status_code=status_code,
    )


@router.get("/queues/{queue_id}")
def show_queue(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    queue_id: int,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    return _detail_page(request, db, user, queue_id, offset=offset)


@router.get("/queues/{queue_id}/progress")
def queue_progress(request: Request, db: SessionDep, user: WebStaff, queue_id: int) -> Response:
    """The progress panel alone, which the queue page polls."""
    return render(
        request,
        "queues/detail.html",
        {"queue": queues.get_queue(db, queue_id), "progress": queues.queue_progress(db, queue_id)},
        block="progress",
        user=user,
    )


@router.post("/queues/{queue_id}/edit")
def update_queue(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    queue_id: int,
    name: Text = "",
    overlap: Text = "",
    max_overlap: Text = "",
    disagreement_tau: Text = "",
    priority: Text = "",
    lease_seconds: Text = "",
    max_active_leases: Text = "",
    open_to_all: Text = "",
) -> Response:
    values = {
        "name": name,
        "overlap": overlap,
        "max_overlap": max_overlap,
        "disagreement_tau": disagreement_tau,
        "priority": priority,
        "lease_seconds": lease_seconds,
        "max_active_leases": max_active_leases,
        "open_to_all": open_to_all,
    }
    queues.get_queue(db, queue_id)
    try:
        data = _settings_data(values)
        max_overlap = data.pop("max_overlap")
        changes = QueueUpdate(**data)
        changes = QueueUpdate(**data, max_overlap=max_overlap or changes.overlap)
        queue = queues.update_queue(db, queue_id, changes)
    except (ValidationError, DomainError) as error:
        return _detail_page(
            request,
            db,
            admin,
            queue_id,
            values=values,
            errors=form_errors(error),
            status_code=_status(error),
        )
    return redirect(request, f"/queues/{queue.id}", notice=f"Saved {queue.name}.")


@router.post("/queues/{queue_id}/suggestions")
def set_suggestion_mode(
    request: Request, db: SessionDep, admin: WebAdmin, queue_id: int, mode: Text = ""
) -> Response:
    try:
        queue = suggestions.set_suggestion_mode(
            db, queue_id, SuggestionModeSet.model_validate({"mode": mode.strip()}).mode
        )
    except (ValidationError, DomainError) as error:
        return _detail_page(
            request, db, admin, queue_id, errors={"mode": "; ".join(form_errors(error).values())},
            status_code=_status(error),
        )  # fmt: skip
    words = {"off": "off", "after": "after submit", "before": "before ranking"}
    return redirect(
        request,
        f"/queues/{queue.id}",
        notice=f"The judge's ranking is shown {words[queue.suggestion_mode.value]}.",
    )


@router.post("/queues/{queue_id}/pause")
def pause_queue(request: Request, db: SessionDep, admin: WebAdmin, queue_id: int) -> Response:
    queue = queues.set_paused(db, queue_id, True)
    return redirect(request, f"/queues/{queue.id}", notice=f"Paused {queue.name}.")


@router.post("/queues/{queue_id}/resume")
def resume_queue(request: Request, db: SessionDep, admin: WebAdmin, queue_id: int) -> Response:
    queue = queues.set_paused(db, queue_id, False)
    return redirect(request, f"/queues/{queue.id}", notice=f"Resumed {queue.name}.")


@router.post("/queues/{queue_id}/labelers")
def set_labelers(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    queue_id: int,
    labeler_ids: Annotated[list[common.Text], Form(max_length=10_000)] = [],  # noqa: B006
) -> Response:
    queues.get_queue(db, queue_id)
    try:
        chosen = _ids(labeler_ids, "user", "labeler_ids")
        queue = queues.set_labelers(db, queue_id, chosen)
    except DomainError as error:
        return _detail_page(
            request,
            db,
            admin,
            queue_id,
            errors=form_errors(error),
            selected=[int(i) for i in labeler_ids if ID_TOKEN.match(i)],
            status_code=error.status_code,
        )
    count = len(set(chosen))
    return redirect(
        request,
        f"/queues/{queue.id}",
        notice=f"{count} labeler{'' if count == 1 else 's'} listed for {queue.name}.",
    )


def _added_notice(added: AddedTasks, untasked: bool) -> str:
    count = len(added.tasks)
    if not count and not added.skipped_prompt_ids and untasked:
        return "Every prompt of the project already has a task in this queue; nothing added."
    notice = f"Added {count} task{'' if count == 1 else 's'}"
    skipped = len(added.skipped_prompt_ids)
    if skipped:
        prompts_word = "prompt" if skipped == 1 else "prompts"
        notice += f"; skipped {skipped} {prompts_word} with fewer than 2 responses"
    return notice + "."


@router.post("/queues/{queue_id}/tasks")
def add_tasks(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    queue_id: int,
    prompt_ids: Annotated[common.Text, Form(max_length=200_000)] = "",
    all_untasked: Annotated[common.Text, Form(max_length=8)] = "",
) -> Response:
    queue = queues.get_queue(db, queue_id)
    untasked = all_untasked == "on"
    try:
        if untasked and prompt_ids.strip():
            raise InvalidInput(
                "give prompt ids or tick “all prompts without a task”, not both",
                field="prompt_ids",
            )
        if untasked:
            added = task_service.add_tasks_for_untasked_prompts(db, queue_id)
        else:
            ids = _ids(prompt_ids, "prompt", "prompt_ids")
            added = task_service.add_tasks_for_prompts(db, queue_id, ids)
    except DomainError as error:
        return _detail_page(
            request,
            db,
            admin,
            queue_id,
            errors={"prompt_ids": error.message},
            prompt_ids=prompt_ids,
            status_code=error.status_code,
        )
    return redirect(request, f"/queues/{queue.id}", notice=_added_notice(added, untasked))
