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
from functools import cache
from typing import Any

from sqlalchemy import (
    Executable,
    Float,
    Select,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    Draft,
    GuidelineVersion,
    LabelSource,
    Pair,
    Project,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    SuggestionMode,
    Task,
    TaskResponse,
    User,
)
from app.models.base import UTCDateTime, utcnow
from app.schemas.labeling import DemonstrationSubmit
from app.services.drafts import delete_draft
from app.services.guidelines import current_guideline
from app.services.leasing import LeaseExpired, get_own_assignment, lease_has_expired
from app.services.prompts import storable_id
from app.services.rewrites import rewrite_response_ids
from app.services.suggestions import latest_ai_comparison


@dataclass(frozen=True)
class Submitted:
    assignment_id: int
    label_id: int
    replayed: bool
    pairs: int = 0
    warnings: tuple[str, ...] = ()
    # Ids of the responses a comparison's rewrites became.
    rewrites: tuple[int, ...] = ()
    # The AI comparison (a judge's ranking) the label recorded as its suggestion, if any.
    suggestion_comparison_id: int | None = None


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
        time_spent_seconds=time_spent(ctx.assignment.leased_at, now, data.idle_seconds),
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


@dataclass(frozen=True)
class Claimed:
    """An assignment marked submitted in the open transaction, with what the label needs of
    its task, queue and project (read in one statement)."""

    assignment_id: int
    task_id: int
    leased_at: datetime
    prompt_id: int
    overlap: int
    queue_id: int
    disagreement_tau: float | None
    max_overlap: int
    label_schema: dict[str, Any]
    guideline_version_id: int | None
    # The queue's suggestion mode and the task's newest ranked AI comparison (a judge's), the
    # suggestion a comparison label records (app/services/suggestions.py).
    suggestion_mode: SuggestionMode
    suggestion_comparison_id: int | None
    # The task's responses: id to content (the content only where `with_content` asked).
    responses: dict[int, str | None]


def claim_for_submit(
    db: Session,
    assignment_id: int,
    labeler: User,
    kind: QueueKind,
    model: type[Comparison] | type[Demonstration],
    key: str | None,
    now: datetime,
    idle_seconds: float,
    *,
    with_content: bool = False,
) -> Claimed | Submitted:
    """Marks the labeler's unexpired active assignment submitted and deletes their draft of its
    task, in the caller's transaction (on PostgreSQL one statement; the row lock it takes
    decides a race with a second submit or the lease's expiry), then reads the task's
    context. Returns the first label instead when `key` was used already; raises what
    open_for_submit says when the assignment cannot be submitted. The caller commits, or
    rolls back on a refusal."""
    postgres = db.get_bind().dialect.name == "postgresql"
    claim, drop_draft = _claim_statements(postgres)
    values = {"claimed": assignment_id, "claimer": labeler.id, "at": now, "idle": idle_seconds}
    row = db.execute(claim, values).first() if storable_id(assignment_id) else None
    if row is None:
        db.rollback()
        replay = replay_of(db, model, key, labeler)
        if replay is not None:
            return replay
        # Says why: not theirs, another kind, submitted or skipped already, or expired.
        open_for_submit(db, assignment_id, labeler, kind, now)
        raise Conflict(f"assignment {assignment_id} was submitted meanwhile")
    if drop_draft is not None:
        db.execute(drop_draft, {"claimed": assignment_id, "claimer": labeler.id})
    forget_loaded(db, Assignment, assignment_id)
    task_id, leased_at = row
    rows = db.execute(_context_statement(with_content), {"of_task": task_id}).all()
    first = rows[0]
    if QueueKind(first[3]) != kind:
        db.rollback()
        raise InvalidInput(f"assignment {assignment_id} is a {QueueKind(first[3]).value} task")
    return Claimed(
        assignment_id=assignment_id,
        task_id=task_id,
        leased_at=leased_at,
        prompt_id=first[0],
        overlap=first[1],
        queue_id=first[2],
        disagreement_tau=first[4],
        max_overlap=first[5],
        label_schema=first[6],
        guideline_version_id=first[7],
        responses={row[8]: row[9] for row in rows if row[8] is not None},
        suggestion_mode=SuggestionMode(first[10]),
        suggestion_comparison_id=first[11],
    )


# The submit's statements are built once per process, with bound parameters (issue 17).


@cache
def _claim_statements(postgres: bool) -> tuple[Executable, Executable | None]:
    """The claiming UPDATE and, where it is not a CTE of the UPDATE (SQLite), the draft's
    DELETE."""
    now = bindparam("at", type_=UTCDateTime())
    claim = (
        update(Assignment.__table__)
        .where(
            Assignment.id == bindparam("claimed"),
            Assignment.labeler_id == bindparam("claimer"),
            Assignment.status == literal_column("'active'"),
            Assignment.lease_expires_at > now,
        )
        .values(
            status=AssignmentStatus.submitted,
            finished_at=now,
            idle_seconds=bindparam("idle", type_=Float()),
        )
        .returning(Assignment.task_id, Assignment.leased_at)
    )
    drop_draft = delete(Draft).where(
        Draft.task_id
        == select(Assignment.task_id)
        .where(Assignment.id == bindparam("claimed"))
        .scalar_subquery(),
        Draft.labeler_id == bindparam("claimer"),
    )
    if postgres:
        # Runs once with the UPDATE; a refusal rolls both back, so the draft stays.
        return claim.add_cte(drop_draft.cte("dropped_draft")), None
    return claim, drop_draft


@cache
def _context_statement(with_content: bool) -> Select[tuple[Any, ...]]:
    current = (
        select(GuidelineVersion.id)
        .where(
            GuidelineVersion.project_id == Project.id,
            GuidelineVersion.published_at.is_not(None),
        )
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            Task.prompt_id,
            Task.overlap,
            Queue.id,
            Queue.kind,
            Queue.disagreement_tau,
            Queue.max_overlap,
            Project.label_schema,
            current,
            TaskResponse.response_id,
            Response.content if with_content else literal_column("NULL"),
            Queue.suggestion_mode,
            latest_ai_comparison(),
        )
        .select_from(Task)
        .join(Queue, Queue.id == Task.queue_id)
        .join(Project, Project.id == Queue.project_id)
        .outerjoin(TaskResponse, TaskResponse.task_id == Task.id)
        .outerjoin(Response, Response.id == TaskResponse.response_id)
        .where(Task.id == bindparam("of_task"))
    )


def forget_loaded(db: Session, model: type[Assignment] | type[Task], row_id: int) -> None:
    """A row changed by a Core statement is re-read on its next use, should this session hold
    it already (a request's fresh session does not: nothing to do then)."""
    loaded = db.identity_map.get(db.identity_key(model, row_id))
    if loaded is not None:
        db.expire(loaded)


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
        suggestion_comparison_id=found.suggestion_comparison_id,
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


def time_spent(leased_at: datetime, now: datetime, idle_seconds: float) -> float:
    elapsed = (now - leased_at).total_seconds()
    return max(0.0, elapsed - idle_seconds)


def finish_assignment(
    db: Session, assignment: Assignment, now: datetime, idle_seconds: float
) -> None:
    assignment.status = AssignmentStatus.submitted
    assignment.finished_at = now
    assignment.idle_seconds = idle_seconds
    delete_draft(db, assignment.task_id, assignment.labeler_id)
