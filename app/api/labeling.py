"""/api/v1 labeling, for the labeler who owns the assignment: lease the next task, read it, save
a draft, renew an expired lease, submit a comparison or demonstration, skip; plus the
labeler's queues and the guideline they work under.

Labels carry an optional idempotency key: a client that retries after a lost answer gets the
first submission back (replayed: true), never a second label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.deps import MAX_ID, ApiAdmin, ApiUser, SessionDep
from app.errors import NotFound
from app.models import Assignment, User
from app.schemas.labeling import (
    AssignmentOut,
    ComparisonSubmit,
    DemonstrationSubmit,
    DraftOut,
    DraftSave,
    DraftSaved,
    GuidelineStatusOut,
    LabelerQueueOut,
    LeaseResult,
    Message,
    RequeueResult,
    ShownResponse,
    SkipSubmit,
    SubmitResult,
)
from app.services import (
    assignments,
    drafts,
    guideline_reads,
    overview,
    projects,
    suggestions,
)

router = APIRouter(tags=["labeling"])


def _out(db: SessionDep, assignment: Assignment) -> AssignmentOut:
    return _page_out(assignments.assignment_page(db, assignment))


def _page_out(page: assignments.AssignmentPage) -> AssignmentOut:
    assignment = page.assignment
    offered = page.draft_response
    return AssignmentOut(
        id=assignment.id,
        status=assignment.status,
        leased_at=assignment.leased_at,
        lease_expires_at=assignment.lease_expires_at,
        queue_id=page.queue_id,
        queue_name=page.queue_name,
        kind=page.kind,
        task_id=page.task_id,
        prompt_messages=[Message(**message) for message in page.prompt_messages],
        prompt_category=page.prompt_category,
        project_id=page.project_id,
        responses=[
            ShownResponse(id=response_id, content=content)
            for response_id, content in page.responses
        ],
        draft_response=ShownResponse(id=offered[0], content=offered[1]) if offered else None,
        guideline_version=page.guideline_version,
        draft_revision=page.draft_revision,
        suggestion=page.suggestion,
    )


def _result(done: assignments.Submitted) -> SubmitResult:
    return SubmitResult(
        assignment_id=done.assignment_id,
        label_id=done.label_id,
        replayed=done.replayed,
        pairs=done.pairs,
        warnings=list(done.warnings),
        rewrites=list(done.rewrites),
    )


def _guideline_status(db: SessionDep, user: User, project_id: int) -> GuidelineStatusOut:
    found = guideline_reads.current_for_labeler(db, user, project_id)
    return GuidelineStatusOut(
        project_id=project_id,
        version=found.version.version if found.version else None,
        published_at=found.version.published_at if found.version else None,
        last_read_version=found.last_read_version,
        changed_since_read=found.changed_since_read,
    )


@router.get("/me/queues", response_model=list[LabelerQueueOut])
def my_queues(db: SessionDep, user: ApiUser) -> list[LabelerQueueOut]:
    """The queues you may work on now, highest priority first; empty for admins and
    researchers, who take no tasks."""
    return [
        LabelerQueueOut(
            queue_id=line.queue.id,
            queue_name=line.queue.name,
            kind=line.queue.kind,
            priority=line.queue.priority,
            project_id=line.project.id,
            project_name=line.project.name,
            left=line.left,
            done_today=line.done_today,
            held=line.held,
        )
        for line in overview.labeler_queues(db, user)
    ]


# The lease and the submit are the labeling hot path: `async def` routes that hand their
# database work to a worker thread once. A plain `def` route costs a second hand-off, FastAPI
# checking its answer on a worker thread too (issue 17's profile: thread hand-offs were a
# sixth of the web process's CPU).


@router.post("/queues/{queue_id}/lease", response_model=LeaseResult)
async def lease(queue_id: int, db: SessionDep, user: ApiUser) -> LeaseResult:
    page = await run_in_threadpool(assignments.lease_next_page, db, queue_id, user)
    if page is None:
        return LeaseResult(assignment=None, message="no task left for you in this queue")
    return LeaseResult(assignment=_page_out(page), message="leased")


@router.get("/assignments", response_model=list[AssignmentOut])
def my_assignments(
    db: SessionDep,
    user: ApiUser,
    # Bounded: a larger id names nothing, and PostgreSQL would overflow comparing it (a 500).
    queue_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[AssignmentOut]:
    return [_out(db, found) for found in assignments.active_assignments(db, user, queue_id)]


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut)
def get_assignment(assignment_id: int, db: SessionDep, user: ApiUser) -> AssignmentOut:
    return _out(db, assignments.get_own_assignment(db, assignment_id, user))


@router.get("/assignments/{assignment_id}/draft", response_model=DraftOut)
def get_draft(assignment_id: int, db: SessionDep, user: ApiUser) -> DraftOut:
    """Your saved work on this assignment's task (from this lease or an earlier one)."""
    draft = drafts.get_draft(db, assignments.get_own_assignment(db, assignment_id, user))
    if draft is None:
        raise NotFound(f"no draft saved for assignment {assignment_id}")
    return DraftOut(
        task_id=draft.task_id,
        assignment_id=draft.assignment_id,
        content=draft.content,
        revision=draft.revision,
        updated_at=draft.updated_at,
    )


@router.put("/assignments/{assignment_id}/draft", response_model=DraftSaved)
def save_draft(assignment_id: int, data: DraftSave, db: SessionDep, user: ApiUser) -> DraftSaved:
    draft = drafts.save_draft(db, assignment_id, user, data.content, data.base_revision)
    return DraftSaved(revision=draft.revision, updated_at=draft.updated_at)


@router.post(
    "/assignments/{assignment_id}/renew",
    response_model=AssignmentOut,
    status_code=status.HTTP_201_CREATED,
)
def renew(assignment_id: int, db: SessionDep, user: ApiUser) -> AssignmentOut:
    """After a lease expired: the same task as a new assignment, when it still has room for
    you (409 otherwise). Your draft carries over."""
    return _out(db, assignments.renew_assignment(db, assignment_id, user))


@router.post(
    "/assignments/{assignment_id}/comparison",
    response_model=SubmitResult,
    status_code=status.HTTP_201_CREATED,
)
async def submit_comparison(
    assignment_id: int, data: ComparisonSubmit, db: SessionDep, user: ApiUser
) -> SubmitResult:
    return await run_in_threadpool(_submit_comparison, db, assignment_id, user, data)


def _submit_comparison(
    db: Session, assignment_id: int, user: User, data: ComparisonSubmit
) -> SubmitResult:
    done = assignments.submit_comparison(db, assignment_id, user, data)
    result = _result(done)
    if done.suggestion_comparison_id is not None:
        # Once the label is in, the judge's ranking it is measured against.
        judge = suggestions.ranks_of(db, done.suggestion_comparison_id)
        result.suggestion = suggestions.ranking_groups(judge)
    return result


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


@router.get("/projects/{project_id}/guideline/status", response_model=GuidelineStatusOut)
def guideline_status(project_id: int, db: SessionDep, user: ApiUser) -> GuidelineStatusOut:
    """The current guideline version and whether it changed since you last marked it read."""
    projects.readable_project(db, project_id, user)
    return _guideline_status(db, user, project_id)


@router.post("/projects/{project_id}/guideline/read", response_model=GuidelineStatusOut)
def mark_guideline_read(project_id: int, db: SessionDep, user: ApiUser) -> GuidelineStatusOut:
    """Records that you read the current version (nothing to record while none is published)."""
    projects.readable_project(db, project_id, user)
    guideline_reads.mark_read(db, user, project_id)
    return _guideline_status(db, user, project_id)
