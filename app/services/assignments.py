"""Assignments: a task leased to one labeler until it is submitted, skipped or its lease
expires.

This module is the labeling front door the routes use. Leasing lives in
app/services/leasing.py, submitting in app/services/submitting.py and comparing.py, drafts in
drafts.py; their public names are re-exported here. What remains here: skipping, re-queueing
after a guideline change, and what a labeler sees of an assignment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    Draft,
    GuidelineVersion,
    Prompt,
    PromptCategory,
    Queue,
    QueueKind,
    Response,
    SuggestionMode,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import SkipSubmit
from app.services import suggestions
from app.services.comparing import score_rank_conflicts, submit_comparison
from app.services.drafts import delete_draft, get_draft, save_draft
from app.services.guidelines import current_guideline
from app.services.leasing import (
    LIVE,
    LeaseExpired,
    active_assignments,
    get_own_assignment,
    lease_and_read,
    lease_has_expired,
    lease_next_task,
    renew_assignment,
)
from app.services.prompts import storable_id
from app.services.submitting import Submitted, submit_demonstration

__all__ = [
    "LIVE",
    "AssignmentPage",
    "LeaseExpired",
    "Submitted",
    "active_assignments",
    "assignment_page",
    "assignment_view",
    "current_guideline_id",
    "current_guideline_number",
    "draft_response",
    "get_draft",
    "get_own_assignment",
    "lease_has_expired",
    "lease_next_page",
    "lease_next_task",
    "renew_assignment",
    "requeue_superseded",
    "save_draft",
    "score_rank_conflicts",
    "skip_assignment",
    "submit_comparison",
    "submit_demonstration",
]


def skip_assignment(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: SkipSubmit,
    *,
    now: datetime | None = None,
) -> Assignment:
    """The task goes back to the queue for others; this labeler will not be offered it again,
    so their draft of it goes too."""
    assignment = get_own_assignment(db, assignment_id, labeler)
    if assignment.status not in (AssignmentStatus.active, AssignmentStatus.expired):
        raise Conflict(f"assignment {assignment.id} is {assignment.status.value}")
    newer = db.scalar(
        select(Assignment.id).where(
            Assignment.task_id == assignment.task_id,
            Assignment.labeler_id == labeler.id,
            Assignment.status == AssignmentStatus.active,
            Assignment.id != assignment.id,
        )
    )
    if newer is not None:
        # Skipping the old lease would delete the draft the newer one works on.
        raise Conflict(f"you hold this task again as assignment {newer}; skip that one instead")
    assignment.status = AssignmentStatus.skipped
    assignment.finished_at = now or utcnow()
    assignment.skip_reason = data.reason.value
    assignment.skip_note = data.note or None
    delete_draft(db, assignment.task_id, assignment.labeler_id)
    db.commit()
    return assignment


def requeue_superseded(db: Session, queue_id: int) -> int:
    """Tasks judged under anything but the project's current guideline need new judgements:
    their submitted assignments become 'superseded' (the labels stay) so the slots reopen."""
    queue = db.get(Queue, queue_id) if storable_id(queue_id) else None
    if queue is None:
        raise NotFound(f"no queue {queue_id}")
    current = current_guideline_id(db, queue.project_id)
    if current is None:
        raise InvalidInput("the project has no published guideline to re-judge under")
    label = Comparison if queue.kind == QueueKind.comparison else Demonstration
    stale = (
        select(label.assignment_id)
        .join(Task, Task.id == label.task_id)
        .where(
            Task.queue_id == queue.id,
            label.assignment_id.is_not(None),
            or_(label.guideline_version_id.is_(None), label.guideline_version_id != current),
        )
    )
    result = db.execute(
        update(Assignment)
        .where(Assignment.id.in_(stale), Assignment.status == AssignmentStatus.submitted)
        .values(status=AssignmentStatus.superseded)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    return int(result.rowcount or 0)


def current_guideline_id(db: Session, project_id: int) -> int | None:
    found = current_guideline(db, project_id)
    return found.id if found else None


def current_guideline_number(db: Session, project_id: int) -> int | None:
    found = current_guideline(db, project_id)
    return found.version if found else None


def assignment_view(
    db: Session, assignment: Assignment
) -> tuple[Task, Queue, Prompt, list[Response]]:
    """The task, its queue and prompt, and a comparison task's responses in this assignment's
    display order (none for a demonstration task: see draft_response)."""
    task = db.get(Task, assignment.task_id)
    assert task is not None
    queue = db.get(Queue, task.queue_id)
    prompt = db.get(Prompt, task.prompt_id)
    assert queue is not None and prompt is not None
    if queue.kind != QueueKind.comparison:
        return task, queue, prompt, []
    by_id = {
        response.id: response
        for response in db.scalars(
            select(Response)
            .join(TaskResponse, TaskResponse.response_id == Response.id)
            .where(TaskResponse.task_id == task.id)
        )
    }
    order = assignment.response_order or sorted(by_id)
    return task, queue, prompt, [by_id[response_id] for response_id in order]


def draft_response(db: Session, task: Task) -> Response | None:
    """The model draft a demonstration task offers to start from, if any; None for a
    comparison task."""
    queue = db.get(Queue, task.queue_id)
    if queue is None or queue.kind != QueueKind.demonstration:
        return None
    return db.scalar(
        select(Response)
        .join(TaskResponse, TaskResponse.response_id == Response.id)
        .where(TaskResponse.task_id == task.id)
    )


@dataclass(frozen=True)
class AssignmentPage:
    """Everything a labeler's client shows of an assignment, read in one statement."""

    assignment: Assignment
    task_id: int
    queue_id: int
    queue_name: str
    kind: QueueKind
    project_id: int
    prompt_messages: list[dict[str, Any]]
    prompt_category: PromptCategory
    # A comparison task's responses (id, content) in this assignment's display order; empty
    # for a demonstration task.
    responses: list[tuple[int, str]]
    # The model draft a demonstration task offers to start from, if any.
    draft_response: tuple[int, str] | None
    guideline_version: int | None
    draft_revision: int | None
    # Whether a client may show the judge's ranking before the label (app/services/suggestions).
    suggestion_mode: SuggestionMode = SuggestionMode.off
    # In "before" mode, the judge's ranking as groups of tied response ids, best first.
    suggestion: list[list[int]] | None = None


def assignment_page(db: Session, assignment: Assignment) -> AssignmentPage:
    """What assignment_view, draft_response, get_draft and current_guideline_number give,
    in one round trip: one row per response of the task (one row when it has none)."""
    rows = db.execute(
        _page_statement(),
        {"task_id": assignment.task_id, "labeler_id": assignment.labeler_id},
    ).all()
    first = rows[0]
    kind = QueueKind(first[3])
    content = {row[9]: row[10] for row in rows if row[9] is not None}
    responses: list[tuple[int, str]] = []
    offered = None
    if kind == QueueKind.comparison:
        order = assignment.response_order or sorted(content)
        responses = [(response_id, content[response_id]) for response_id in order]
    elif content:
        offered = next(iter(content.items()))
    return AssignmentPage(
        assignment=assignment,
        task_id=first[0],
        queue_id=first[1],
        queue_name=first[2],
        kind=kind,
        project_id=first[4],
        prompt_messages=first[5],
        prompt_category=PromptCategory(first[6]),
        responses=responses,
        draft_response=offered,
        guideline_version=first[7],
        draft_revision=first[8],
        suggestion_mode=SuggestionMode(first[11]),
        suggestion=_suggestion_before(db, first[0], kind, SuggestionMode(first[11])),
    )


def _suggestion_before(
    db: Session, task_id: int, kind: QueueKind, mode: SuggestionMode
) -> list[list[int]] | None:
    """The judge's ranking a "before" queue shows with the task (one more statement, only in
    that mode: the lease's hot path stays as it is otherwise)."""
    if mode != SuggestionMode.before or kind != QueueKind.comparison:
        return None
    judge = suggestions.task_suggestion(db, task_id)
    return suggestions.ranking_groups(judge) if judge else None


def lease_next_page(db: Session, queue_id: int, labeler: User) -> AssignmentPage | None:
    """lease_next_task with the new assignment's page, read before the lease commits (one
    transaction for both); None when no task is left."""
    return lease_and_read(db, queue_id, labeler, lambda leased: assignment_page(db, leased))


@cache
def _page_statement() -> Select[tuple[Any, ...]]:
    """assignment_page's statement, built once (the lease's hot path: issue 17)."""
    guideline = (
        select(GuidelineVersion.version)
        .where(
            GuidelineVersion.project_id == Queue.project_id,
            GuidelineVersion.published_at.is_not(None),
        )
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    draft = (
        select(Draft.revision)
        .where(Draft.task_id == Task.id, Draft.labeler_id == bindparam("labeler_id"))
        .scalar_subquery()
    )
    return (
        select(
            Task.id,
            Queue.id,
            Queue.name,
            Queue.kind,
            Queue.project_id,
            Prompt.messages,
            Prompt.category,
            guideline,
            draft,
            Response.id,
            Response.content,
            Queue.suggestion_mode,
        )
        .select_from(Task)
        .join(Queue, Queue.id == Task.queue_id)
        .join(Prompt, Prompt.id == Task.prompt_id)
        .outerjoin(TaskResponse, TaskResponse.task_id == Task.id)
        .outerjoin(Response, Response.id == TaskResponse.response_id)
        .where(Task.id == bindparam("task_id"))
        .order_by(TaskResponse.position)
    )
