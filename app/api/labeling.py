"""/api/v1 labeling: lease the next task, read it, submit a comparison or demonstration, skip.

Labels carry an optional idempotency key: a client that retries after a lost answer gets the
first submission back (replayed: true), never a second label."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.deps import ApiAdmin, ApiUser, SessionDep
from app.models import Assignment
from app.schemas.labeling import (
    AssignmentOut,
    ComparisonSubmit,
    DemonstrationSubmit,
    LeaseResult,
    Message,
    RequeueResult,
    ShownResponse,
    SkipSubmit,
    SubmitResult,
)
from app.services import assignments

router = APIRouter(tags=["labeling"])


def _out(db: SessionDep, assignment: Assignment) -> AssignmentOut:
    task, queue, prompt, responses = assignments.assignment_view(db, assignment)
    return AssignmentOut(
        id=assignment.id,
        status=assignment.status,
        leased_at=assignment.leased_at,
        lease_expires_at=assignment.lease_expires_at,
        queue_id=queue.id,
        queue_name=queue.name,
        kind=queue.kind,
        task_id=task.id,
        prompt_messages=[Message(**message) for message in prompt.messages],
        prompt_category=prompt.category,
        responses=[
            ShownResponse(id=response.id, content=response.content) for response in responses
        ],
        guideline_version=assignments.current_guideline_number(db, queue.project_id),
    )


def _result(done: assignments.Submitted) -> SubmitResult:
    return SubmitResult(
        assignment_id=done.assignment_id,
        label_id=done.label_id,
        replayed=done.replayed,
        pairs=done.pairs,
        warnings=list(done.warnings),
    )


@router.post("/queues/{queue_id}/lease", response_model=LeaseResult)
def lease(queue_id: int, db: SessionDep, user: ApiUser) -> LeaseResult:
    assignment = assignments.lease_next_task(db, queue_id, user)
    if assignment is None:
        return LeaseResult(assignment=None, message="no task left for you in this queue")
    return LeaseResult(assignment=_out(db, assignment), message="leased")


@router.get("/assignments", response_model=list[AssignmentOut])
def my_assignments(
    db: SessionDep, user: ApiUser, queue_id: int | None = None
) -> list[AssignmentOut]:
    return [_out(db, found) for found in assignments.active_assignments(db, user, queue_id)]


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut)
def get_assignment(assignment_id: int, db: SessionDep, user: ApiUser) -> AssignmentOut:
    return _out(db, assignments.get_own_assignment(db, assignment_id, user))


@router.post(
    "/assignments/{assignment_id}/comparison",
    response_model=SubmitResult,
    status_code=status.HTTP_201_CREATED,
)
def submit_comparison(
    assignment_id: int, data: ComparisonSubmit, db: SessionDep, user: ApiUser
) -> SubmitResult:
    return _result(assignments.submit_comparison(db, assignment_id, user, data))


@router.post(
    "/assignments/{assignment_id}/demonstration",
    response_model=SubmitResult,
    status_code=status.HTTP_201_CREATED,
)
def submit_demonstration(
    assignment_id: int, data: DemonstrationSubmit, db: SessionDep, user: ApiUser
) -> SubmitResult:
    return _result(assignments.submit_demonstration(db, assignment_id, user, data))


@router.post("/assignments/{assignment_id}/skip", response_model=AssignmentOut)
def skip(assignment_id: int, data: SkipSubmit, db: SessionDep, user: ApiUser) -> AssignmentOut:
    return _out(db, assignments.skip_assignment(db, assignment_id, user, data))


@router.post("/queues/{queue_id}/requeue-superseded", response_model=RequeueResult)
def requeue_superseded(queue_id: int, db: SessionDep, _: ApiAdmin) -> RequeueResult:
    return RequeueResult(superseded=assignments.requeue_superseded(db, queue_id))
