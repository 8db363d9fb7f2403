"""Taking labels back: the steps every label shares, and demonstrations (comparisons are in
app/services/comparing.py).

Every check runs before anything is written, and the label, its pairs, its rewrites, the
assignment's new status and the deleted draft commit together or not at all. A retry with the
same idempotency key gets the first label back; a label sent after its lease expired is refused
(the slot may be someone else's by now) and its draft kept, so the labeler can renew and send
it again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    LabelSource,
    Pair,
    Project,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import DemonstrationSubmit
from app.services.drafts import delete_draft
from app.services.guidelines import current_guideline
from app.services.leasing import LeaseExpired, get_own_assignment, lease_has_expired
from app.services.rewrites import rewrite_response_ids


@dataclass(frozen=True)
class Submitted:
    assignment_id: int
    label_id: int
    replayed: bool
    pairs: int = 0
    warnings: tuple[str, ...] = ()
    # Ids of the responses a comparison's rewrites became.
    rewrites: tuple[int, ...] = ()


@dataclass(frozen=True)
class SubmitContext:
    assignment: Assignment
    task: Task
    queue: Queue
    project: Project
    guideline_version_id: int | None


def submit_demonstration(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: DemonstrationSubmit,
    *,
    now: datetime | None = None,
) -> Submitted:
    now = now or utcnow()
    replay = replay_of(db, Demonstration, data.idempotency_key, labeler)
    if replay is not None:
        return replay
    ctx = open_for_submit(db, assignment_id, labeler, QueueKind.demonstration, now)
    if data.draft_response_id is not None:
        offered = db.scalar(
            select(TaskResponse.response_id).where(TaskResponse.task_id == ctx.task.id)
        )
        if offered is None:
            raise InvalidInput("this task offers no draft response", field="draft_response_id")
        if data.draft_response_id != offered:
            raise InvalidInput(
                f"response {data.draft_response_id} is not this task's draft response",
                field="draft_response_id",
            )
    answer = Response(
        prompt_id=ctx.task.prompt_id,
        content=data.messages[0].content,
        source=ResponseSource.human,
        author_id=labeler.id,
        parent_id=data.draft_response_id,
    )
    db.add(answer)
    db.flush()
    demonstration = Demonstration(
        assignment_id=ctx.assignment.id,
        task_id=ctx.task.id,
        prompt_id=ctx.task.prompt_id,
        labeler_id=labeler.id,
        source=LabelSource.labeler,
        messages=[message.model_dump() for message in data.messages],
        origin=data.origin,
        draft_response_id=data.draft_response_id,
        response_id=answer.id,
        guideline_version_id=ctx.guideline_version_id,
        time_spent_seconds=time_spent(ctx.assignment, now, data.idle_seconds),
        idempotency_key=data.idempotency_key,
    )
    db.add(demonstration)
    finish_assignment(db, ctx.assignment, now, data.idle_seconds)
    replay = commit_label(db, Demonstration, data.idempotency_key, labeler, assignment_id)
    if replay is not None:
        return replay
    return Submitted(ctx.assignment.id, demonstration.id, replayed=False)


def open_for_submit(
    db: Session, assignment_id: int, labeler: User, kind: QueueKind, now: datetime
) -> SubmitContext:
    assignment = get_own_assignment(db, assignment_id, labeler)
    task = db.get(Task, assignment.task_id)
    assert task is not None
    queue = db.get(Queue, task.queue_id)
    assert queue is not None
    if queue.kind != kind:
        raise InvalidInput(f"assignment {assignment.id} is a {queue.kind.value} task")
    if assignment.status not in (AssignmentStatus.active, AssignmentStatus.expired):
        raise Conflict(f"assignment {assignment.id} is {assignment.status.value}")
    if lease_has_expired(assignment, now):
        raise LeaseExpired(
            f"the lease on assignment {assignment.id} expired at "
            f"{assignment.lease_expires_at.isoformat()}; your draft is kept: renew the lease "
            "to submit it"
        )
    project = db.get(Project, queue.project_id)
    assert project is not None
    guideline = current_guideline(db, project.id)
    return SubmitContext(assignment, task, queue, project, guideline.id if guideline else None)


def replay_of(
    db: Session, model: type[Comparison] | type[Demonstration], key: str | None, labeler: User
) -> Submitted | None:
    if key is None:
        return None
    found = db.scalar(select(model).where(model.idempotency_key == key))
    if found is None:
        return None
    if found.labeler_id != labeler.id:
        raise Conflict("this idempotency key was used for another label")
    if isinstance(found, Demonstration):
        return Submitted(found.assignment_id or 0, found.id, replayed=True)
    pairs = db.scalar(select(func.count()).select_from(Pair).where(Pair.comparison_id == found.id))
    return Submitted(
        found.assignment_id or 0,
        found.id,
        replayed=True,
        pairs=int(pairs or 0),
        rewrites=tuple(rewrite_response_ids(db, found.id)),
    )


def commit_label(
    db: Session,
    model: type[Comparison] | type[Demonstration],
    key: str | None,
    labeler: User,
    assignment_id: int,
) -> Submitted | None:
    """Commits the label; when a concurrent retry with the same key won the race, rolls back
    and returns that first label instead."""
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        replay = replay_of(db, model, key, labeler)
        if replay is not None:
            return replay
        raise Conflict(f"assignment {assignment_id} was submitted meanwhile") from None
    return None


def time_spent(assignment: Assignment, now: datetime, idle_seconds: float) -> float:
    elapsed = (now - assignment.leased_at).total_seconds()
    return max(0.0, elapsed - idle_seconds)


def finish_assignment(
    db: Session, assignment: Assignment, now: datetime, idle_seconds: float
) -> None:
    assignment.status = AssignmentStatus.submitted
    assignment.finished_at = now
    assignment.idle_seconds = idle_seconds
    delete_draft(db, assignment.task_id, assignment.labeler_id)
