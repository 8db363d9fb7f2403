"""Request and response shapes for queues, their tasks, gold answers and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.models.queues import QueueKind
from app.schemas.common import Text

MAX_OVERLAP = 100
MAX_LEASE_SECONDS = 7 * 24 * 3600
# Priorities are small integers in practice; the bound keeps them inside a 32-bit column.
PRIORITY_BOUND = 1_000_000
MAX_ACTIVE_LEASES = 1_000
MAX_LABELERS = 10_000
MAX_TASK_ITEMS = 1_000
# InstructGPT shows labelers between 4 and 9 responses to rank; 2 is a plain pair.
MIN_COMPARISON_RESPONSES = 2
MAX_COMPARISON_RESPONSES = 9


def _clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ValueError("a queue needs a name")
    return value


def _at_least_overlap(value: int | None, info: ValidationInfo) -> int | None:
    overlap = info.data.get("overlap")
    if value is not None and overlap is not None and value < overlap:
        raise ValueError(f"max_overlap must be at least overlap ({overlap})")
    return value


def _default_to_overlap(value: int | None, info: ValidationInfo) -> int | None:
    """On a new queue, max_overlap left out equals overlap."""
    return info.data.get("overlap") if value is None else _at_least_overlap(value, info)


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    kind: QueueKind
    overlap: int = Field(default=1, ge=1, le=MAX_OVERLAP)
    # Adaptive overlap: left out, it equals overlap (no extra labelers on disagreement).
    max_overlap: int | None = Field(default=None, ge=1, le=MAX_OVERLAP, validate_default=True)
    disagreement_tau: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    priority: int = Field(default=0, ge=-PRIORITY_BOUND, le=PRIORITY_BOUND)
    lease_seconds: int = Field(default=1800, gt=0, le=MAX_LEASE_SECONDS)
    max_active_leases: int = Field(default=3, ge=1, le=MAX_ACTIVE_LEASES)
    open_to_all: bool = True
    labeler_ids: list[int] = Field(default_factory=list, max_length=MAX_LABELERS)

    _name = field_validator("name")(classmethod(lambda cls, v: _clean_name(v)))

    @field_validator("max_overlap")
    @classmethod
    def _max_overlap(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _default_to_overlap(value, info)


class QueueUpdate(BaseModel):
    """Only the fields sent change. `kind` is fixed once a queue exists. A new overlap applies
    to tasks added afterwards; existing tasks keep theirs (it may have grown adaptively)."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    overlap: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    max_overlap: int | None = Field(default=None, ge=1, le=MAX_OVERLAP)
    # Sent as null, it switches adaptive overlap off.
    disagreement_tau: float | None = Field(default=None, ge=-1, le=1, allow_inf_nan=False)
    priority: int | None = Field(default=None, ge=-PRIORITY_BOUND, le=PRIORITY_BOUND)
    lease_seconds: int | None = Field(default=None, gt=0, le=MAX_LEASE_SECONDS)
    max_active_leases: int | None = Field(default=None, ge=1, le=MAX_ACTIVE_LEASES)
    open_to_all: bool | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: _clean_name(v)))

    @field_validator("max_overlap")
    @classmethod
    def _max_overlap(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _at_least_overlap(value, info)

    @field_validator(
        "overlap", "max_overlap", "priority", "lease_seconds", "max_active_leases", "open_to_all"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values actually sent: an explicit null is refused, not ignored.
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class QueueOut(BaseModel):
    id: int
    project_id: int
    name: str
    kind: QueueKind
    overlap: int
    max_overlap: int
    disagreement_tau: float | None
    priority: int
    lease_seconds: int
    max_active_leases: int
    open_to_all: bool
    is_paused: bool
    labeler_ids: list[int]
    created_by_id: int | None
    created_at: datetime

    @classmethod
    def from_model(cls, queue: Any, labeler_ids: list[int]) -> QueueOut:
        return cls(
            id=queue.id,
            project_id=queue.project_id,
            name=queue.name,
            kind=queue.kind,
            overlap=queue.overlap,
            max_overlap=queue.max_overlap,
            disagreement_tau=queue.disagreement_tau,
            priority=queue.priority,
            lease_seconds=queue.lease_seconds,
            max_active_leases=queue.max_active_leases,
            open_to_all=queue.open_to_all,
            is_paused=queue.is_paused,
            labeler_ids=labeler_ids,
            created_by_id=queue.created_by_id,
            created_at=queue.created_at,
        )


class LabelersSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labeler_ids: list[int] = Field(max_length=MAX_LABELERS)


class GoldAnswer(BaseModel):
    """The known best order of a comparison task's responses: groups of tied response ids,
    best first, covering every response of the task exactly once."""

    model_config = ConfigDict(extra="forbid")

    ranking: list[list[int]] = Field(max_length=MAX_COMPARISON_RESPONSES)


class TaskItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: int
    # Shown in this order (positions 0..K-1); empty for a demonstration task.
    response_ids: list[int] = Field(default_factory=list, max_length=50)
    priority: int = Field(default=0, ge=-PRIORITY_BOUND, le=PRIORITY_BOUND)
    is_gold: bool = False
    gold_answer: dict[Text, Any] | None = None


class TasksAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[TaskItem] = Field(min_length=1, max_length=MAX_TASK_ITEMS)


class TaskOut(BaseModel):
    id: int
    queue_id: int
    prompt_id: int
    response_ids: list[int]
    priority: int
    overlap: int
    is_gold: bool
    gold_answer: dict[str, Any] | None
    retired_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, task: Any, response_ids: list[int]) -> TaskOut:
        return cls(
            id=task.id,
            queue_id=task.queue_id,
            prompt_id=task.prompt_id,
            response_ids=response_ids,
            priority=task.priority,
            overlap=task.overlap,
            is_gold=task.is_gold,
            gold_answer=task.gold_answer,
            retired_at=task.retired_at,
            created_at=task.created_at,
        )


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class QueueProgress(BaseModel):
    """Where a queue stands: labels needed, made, being made, and how soon the rest will be."""

    tasks: int
    # Sum of every task's overlap: how many labels the queue asks for.
    required: int
    # Submitted assignments.
    done: int
    # Active assignments whose lease has not run out.
    in_progress: int
    # required - done - in_progress, never below 0.
    left: int
    # Assignments submitted in the last 60 minutes.
    per_hour: int
    # left at the last hour's pace; None when nothing was submitted in that hour.
    eta_seconds: int | None
