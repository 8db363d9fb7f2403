"""/api/v1 queues, their tasks and progress: admins manage, researchers read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiStaff, SessionDep
from app.models import Queue, Task
from app.schemas.queues import (
    GoldAnswer,
    LabelersSet,
    QueueCreate,
    QueueOut,
    QueueProgress,
    QueueUpdate,
    TaskOut,
    TaskPage,
    TasksAdd,
)
from app.services import queues, tasks
from app.services.prompts import MAX_ID

router = APIRouter(responses=STANDARD_ERRORS, tags=["queues"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


def _queue_out(db: Session, queue: Queue) -> QueueOut:
    return QueueOut.from_model(queue, queues.labeler_ids(db, queue.id))


def _tasks_out(db: Session, found: list[Task]) -> list[TaskOut]:
    responses = tasks.response_ids_by_task(db, [task.id for task in found])
    return [TaskOut.from_model(task, responses[task.id]) for task in found]


@router.get("/projects/{project_id}/queues", response_model=list[QueueOut])
def list_queues(project_id: int, db: SessionDep, _: ApiStaff) -> list[QueueOut]:
    found = queues.list_queues(db, project_id)
    labelers = queues.labeler_ids_by_queue(db, [queue.id for queue in found])
    return [QueueOut.from_model(queue, labelers[queue.id]) for queue in found]


@router.post(
    "/projects/{project_id}/queues", response_model=QueueOut, status_code=status.HTTP_201_CREATED
)
def create_queue(project_id: int, data: QueueCreate, db: SessionDep, admin: ApiAdmin) -> QueueOut:
    return _queue_out(db, queues.create_queue(db, project_id, data, admin))


@router.get("/queues/{queue_id}", response_model=QueueOut)
def get_queue(queue_id: int, db: SessionDep, _: ApiStaff) -> QueueOut:
    return _queue_out(db, queues.get_queue(db, queue_id))


@router.patch("/queues/{queue_id}", response_model=QueueOut)
def update_queue(queue_id: int, data: QueueUpdate, db: SessionDep, _: ApiAdmin) -> QueueOut:
    return _queue_out(db, queues.update_queue(db, queue_id, data))


@router.post("/queues/{queue_id}/pause", response_model=QueueOut)
def pause_queue(queue_id: int, db: SessionDep, _: ApiAdmin) -> QueueOut:
    return _queue_out(db, queues.set_paused(db, queue_id, True))


@router.post("/queues/{queue_id}/resume", response_model=QueueOut)
def resume_queue(queue_id: int, db: SessionDep, _: ApiAdmin) -> QueueOut:
    return _queue_out(db, queues.set_paused(db, queue_id, False))


@router.put("/queues/{queue_id}/labelers", response_model=QueueOut)
def set_labelers(queue_id: int, data: LabelersSet, db: SessionDep, _: ApiAdmin) -> QueueOut:
    return _queue_out(db, queues.set_labelers(db, queue_id, data.labeler_ids))


@router.post(
    "/queues/{queue_id}/tasks", response_model=list[TaskOut], status_code=status.HTTP_201_CREATED
)
def add_tasks(queue_id: int, data: TasksAdd, db: SessionDep, _: ApiAdmin) -> list[TaskOut]:
    return _tasks_out(db, tasks.add_tasks(db, queue_id, data))


@router.get("/queues/{queue_id}/tasks", response_model=TaskPage)
def list_tasks(
    queue_id: int, db: SessionDep, _: ApiStaff, limit: Limit = 50, offset: Offset = 0
) -> TaskPage:
    found = tasks.list_tasks(db, queue_id, limit, offset)
    return TaskPage(
        items=_tasks_out(db, found),
        total=tasks.count_tasks(db, queue_id),
        limit=limit,
        offset=offset,
    )


@router.get("/queues/{queue_id}/progress", response_model=QueueProgress)
def queue_progress(queue_id: int, db: SessionDep, _: ApiStaff) -> QueueProgress:
    return queues.queue_progress(db, queue_id)


@router.put("/tasks/{task_id}/gold", response_model=TaskOut)
def set_gold(task_id: int, data: GoldAnswer, db: SessionDep, _: ApiAdmin) -> TaskOut:
    task = tasks.set_gold(db, task_id, data.model_dump())
    return _tasks_out(db, [task])[0]
