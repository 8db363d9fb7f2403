"""/api/v1/admin/task-events: what Celery tasks did, newest first (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from app.deps import ApiAdmin, SessionDep, read_only
from app.schemas import common
from app.services import task_events

router = APIRouter(prefix="/admin/task-events", tags=["admin"])


class TaskEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: str
    task_name: str
    # sent, started, succeeded, failed, retried or revoked.
    state: str
    at: datetime
    hostname: str | None
    run_id: int | None
    dataset_job_id: int | None
    error_type: str | None
    error_message: str | None


@router.get("", response_model=list[TaskEventOut])
@read_only
def list_task_events(
    db: SessionDep,
    _: ApiAdmin,
    task_name: Annotated[common.Text | None, Query(max_length=200)] = None,
    state: Annotated[common.Text | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=task_events.MAX_LIST)] = 100,
) -> list[TaskEventOut]:
    found = task_events.list_events(db, task_name=task_name, state=state, limit=limit)
    return [TaskEventOut.model_validate(event) for event in found]
