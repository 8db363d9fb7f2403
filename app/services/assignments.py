"""Leasing tasks to labelers and taking their labels back.

A task is never leased beyond its overlap nor twice to one labeler, under any concurrency:
on PostgreSQL the candidate task row is locked (FOR UPDATE SKIP LOCKED) and its live count
re-read after the lock; on SQLite every transaction begins IMMEDIATE, taking the database's
single write lock, which serialises leases. A partial unique index backs the
"never twice to one labeler" rule in both."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    GuidelineVersion,
    LabelSource,
    Pair,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, DemonstrationSubmit, SkipSubmit
from app.services.agreement.metrics import kendall_tau_b
from app.services.pairs import RankedResponse, dense_ranks, expand_pairs
from app.services.queues import can_work_on

# Statuses that hold a labeler's slot on a task: while active (and unexpired) or once done.
LIVE = (AssignmentStatus.active, AssignmentStatus.submitted)
LEASE_ATTEMPTS = 200
_shuffle = random.SystemRandom().shuffle


@dataclass(frozen=True)
class Submitted:
    assignment_id: int
    label_id: int
    replayed: bool
    pairs: int = 0
    warnings: tuple[str, ...] = ()


def lease_next_task(
    db: Session, queue_id: int, labeler: User, *, now: datetime | None = None
) -> Assignment | None:
    """Leases the highest-priority task this labeler may still do, or None when none is left."""
    now = now or utcnow()
    if labeler.role != Role.labeler:
        raise PermissionDenied("only labelers take tasks from queues")
    queue = db.get(Queue, queue_id)
    if queue is None or not can_work_on(db, queue, labeler):
        # Same answer for "no such queue" and "not yours": ids reveal nothing.
        raise NotFound(f"no queue {queue_id} open to you")
    if queue.is_paused:
        raise Conflict(f"the queue {queue.name!r} is paused")

    for _ in range(LEASE_ATTEMPTS):
        _serialise_labeler(db, labeler.id)
        _expire_leases(db, queue.id, now)
        held = _active_leases(db, queue.id, labeler.id, now)
        if held >= queue.max_active_leases:
            db.rollback()
            raise Conflict(
                f"you hold {held} task(s) of this queue already (the most is "
                f"{queue.max_active_leases}); submit or skip one first"
            )
        task = _lock_candidate(db, queue.id, labeler.id, now)
        if task is None:
            busy = _candidates_exist(db, queue.id, labeler.id, now)
            db.rollback()
            if not busy:
                return None
            # Every open task is being leased by someone else this instant (SKIP LOCKED passed
            # them over); one of those leases may fail or leave room, so look again shortly.
            time.sleep(random.uniform(0.005, 0.05))
            continue
        order = [
            row
            for row in db.scalars(
                select(TaskResponse.response_id)
                .where(TaskResponse.task_id == task.id)
                .order_by(TaskResponse.position)
            )
        ]
        _shuffle(order)
        assignment = Assignment(
            task_id=task.id,
            labeler_id=labeler.id,
            status=AssignmentStatus.active,
            leased_at=now,
            lease_expires_at=now + timedelta(seconds=queue.lease_seconds),
            response_order=order or None,
        )
        db.add(assignment)
        try:
            db.commit()
        except IntegrityError:
            # The unique index caught a race the locks did not see; try the next task.
            db.rollback()
            continue
        return assignment
    raise Conflict("the queue is busy; try again")


def _serialise_labeler(db: Session, labeler_id: int) -> None:
    """Starts the lease transaction holding a lock that serialises what must be serial."""
    db.commit()
    # On PostgreSQL one labeler's concurrent requests queue up here, so max_active_leases
    # holds. On SQLite every transaction begins IMMEDIATE (app/db.py): the database's single
    # write lock serialises all leases, and SQLAlchemy drops FOR UPDATE there anyway.
    db.execute(select(User.id).where(User.id == labeler_id).with_for_update())


def _expire_leases(db: Session, queue_id: int, now: datetime) -> None:
    db.execute(
        update(Assignment)
        .where(
            Assignment.status == AssignmentStatus.active,
            Assignment.lease_expires_at <= now,
            Assignment.task_id.in_(select(Task.id).where(Task.queue_id == queue_id)),
        )
        .values(status=AssignmentStatus.expired, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def _active_leases(db: Session, queue_id: int, labeler_id: int, now: datetime) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(Assignment)
            .join(Task, Task.id == Assignment.task_id)
            .where(
                Task.queue_id == queue_id,
                Assignment.labeler_id == labeler_id,
                Assignment.status == AssignmentStatus.active,
                Assignment.lease_expires_at > now,
            )
        )
        or 0
    )


def _live_count(task_id_column: object, now: datetime) -> object:
    return (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.task_id == task_id_column,
            or_(
                Assignment.status == AssignmentStatus.submitted,
                and_(
                    Assignment.status == AssignmentStatus.active,
                    Assignment.lease_expires_at > now,
                ),
            ),
        )
        .scalar_subquery()
    )


def _open_tasks(queue_id: int, labeler_id: int, now: datetime) -> Select[tuple[Task]]:
    # Tasks this labeler holds, did, or skipped are never offered to them again.
    mine = select(Assignment.task_id).where(
        Assignment.labeler_id == labeler_id,
        Assignment.status.in_(
            [AssignmentStatus.active, AssignmentStatus.submitted, AssignmentStatus.skipped]
        ),
    )
    return select(Task).where(
        Task.queue_id == queue_id,
        Task.retired_at.is_(None),
        Task.id.not_in(mine),
        _live_count(Task.id, now) < Task.overlap,
    )


def _candidates_exist(db: Session, queue_id: int, labeler_id: int, now: datetime) -> bool:
    return db.scalars(_open_tasks(queue_id, labeler_id, now).limit(1)).first() is not None


def _lock_candidate(db: Session, queue_id: int, labeler_id: int, now: datetime) -> Task | None:
    skip: list[int] = []
    while True:
        query = (
            _open_tasks(queue_id, labeler_id, now)
            .order_by(Task.priority.desc(), Task.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Task)
        )
        if skip:
            query = query.where(Task.id.not_in(skip))
        task = db.scalars(query).first()
        if task is None:
            return None
        # Re-read after the lock: a lease committed while we waited is visible only now
        # (READ COMMITTED gives each statement a fresh snapshot).
        live = db.scalar(select(_live_count(task.id, now)))
        if live is not None and live < task.overlap:
            return task
        skip.append(task.id)


def active_assignments(db: Session, labeler: User, queue_id: int | None = None) -> list[Assignment]:
    query = select(Assignment).where(
        Assignment.labeler_id == labeler.id,
        Assignment.status == AssignmentStatus.active,
        Assignment.lease_expires_at > utcnow(),
    )
    if queue_id is not None:
        query = query.join(Task, Task.id == Assignment.task_id).where(Task.queue_id == queue_id)
    return list(db.scalars(query.order_by(Assignment.leased_at)))


def get_own_assignment(db: Session, assignment_id: int, labeler: User) -> Assignment:
    assignment = db.get(Assignment, assignment_id)
    if assignment is None or assignment.labeler_id != labeler.id:
        raise NotFound(f"no assignment {assignment_id} of yours")
    return assignment


def _current_guideline(db: Session, project_id: int) -> GuidelineVersion | None:
    return db.scalar(
        select(GuidelineVersion)
        .where(
            GuidelineVersion.project_id == project_id, GuidelineVersion.published_at.is_not(None)
        )
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )


def current_guideline_id(db: Session, project_id: int) -> int | None:
    found = _current_guideline(db, project_id)
    return found.id if found else None


def current_guideline_number(db: Session, project_id: int) -> int | None:
    found = _current_guideline(db, project_id)
    return found.version if found else None


@dataclass(frozen=True)
class _Context:
    assignment: Assignment
    task: Task
    queue: Queue
    project: Project


def _open_for_submit(db: Session, assignment_id: int, labeler: User, kind: QueueKind) -> _Context:
    assignment = get_own_assignment(db, assignment_id, labeler)
    task = db.get(Task, assignment.task_id)
    assert task is not None
    queue = db.get(Queue, task.queue_id)
    assert queue is not None
    if queue.kind != kind:
        raise InvalidInput(f"assignment {assignment.id} is a {queue.kind.value} task")
    if assignment.status not in (AssignmentStatus.active, AssignmentStatus.expired):
        raise Conflict(f"assignment {assignment.id} is {assignment.status.value}")
    project = db.get(Project, queue.project_id)
    assert project is not None
    return _Context(assignment, task, queue, project)


def _replay(
    db: Session, model: type[Comparison] | type[Demonstration], key: str | None, labeler: User
) -> Submitted | None:
    if key is None:
        return None
    found = db.scalar(select(model).where(model.idempotency_key == key))
    if found is None:
        return None
    if found.labeler_id != labeler.id:
        raise Conflict("this idempotency key was used for another label")
    return Submitted(found.assignment_id or 0, found.id, replayed=True)


def _time_spent(assignment: Assignment, now: datetime, idle_seconds: float) -> float:
    elapsed = (now - assignment.leased_at).total_seconds()
    return max(0.0, elapsed - idle_seconds)


def submit_comparison(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: ComparisonSubmit,
    *,
    now: datetime | None = None,
) -> Submitted:
    now = now or utcnow()
    replay = _replay(db, Comparison, data.idempotency_key, labeler)
    if replay is not None:
        return replay
    ctx = _open_for_submit(db, assignment_id, labeler, QueueKind.comparison)
    shown = set(
        db.scalars(select(TaskResponse.response_id).where(TaskResponse.task_id == ctx.task.id))
    )
    given = {item.response_id for item in data.items}
    if given != shown:
        raise InvalidInput(
            "judge exactly the task's responses: "
            f"missing {sorted(shown - given)}, unknown {sorted(given - shown)}"
        )
    allowed_flags = {flag["key"] for flag in ctx.project.label_schema.get("flags", [])}
    for item in data.items:
        unknown = sorted(set(item.flags) - allowed_flags)
        if unknown:
            raise InvalidInput(
                f"unknown flag(s) {', '.join(unknown)} for response {item.response_id}"
            )
        if "other" in item.flags and not item.flag_note.strip():
            raise InvalidInput(f"say what 'other' means for response {item.response_id}")

    ranks = (
        dense_ranks([item.rank for item in data.items if item.rank is not None])
        if not data.all_unacceptable
        else [None] * len(data.items)
    )
    comparison = Comparison(
        assignment_id=ctx.assignment.id,
        task_id=ctx.task.id,
        prompt_id=ctx.task.prompt_id,
        labeler_id=labeler.id,
        source=LabelSource.labeler,
        guideline_version_id=current_guideline_id(db, ctx.project.id),
        all_unacceptable=data.all_unacceptable,
        comment=data.comment.strip(),
        time_spent_seconds=_time_spent(ctx.assignment, now, data.idle_seconds),
        idempotency_key=data.idempotency_key,
    )
    db.add(comparison)
    db.flush()
    for item, rank in zip(data.items, ranks, strict=True):
        db.add(
            ComparisonItem(
                comparison_id=comparison.id,
                response_id=item.response_id,
                score=item.score,
                rank=rank,
                flags=sorted(set(item.flags)),
                flag_note=item.flag_note.strip(),
            )
        )
    pairs = []
    if not data.all_unacceptable:
        pairs = expand_pairs(
            [
                RankedResponse(item.response_id, rank, item.score)
                for item, rank in zip(data.items, ranks, strict=True)
                if rank is not None
            ]
        )
        for pair in pairs:
            db.add(
                Pair(
                    comparison_id=comparison.id,
                    prompt_id=ctx.task.prompt_id,
                    winner_response_id=pair.winner_response_id,
                    loser_response_id=pair.loser_response_id,
                    margin=pair.margin,
                )
            )
    _finish(db, ctx.assignment, now, data.idle_seconds)
    db.flush()
    _adapt_overlap(db, ctx.task, ctx.queue)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        replay = _replay(db, Comparison, data.idempotency_key, labeler)
        if replay is not None:
            return replay
        raise Conflict(f"assignment {assignment_id} was submitted meanwhile") from None
    return Submitted(
        ctx.assignment.id,
        comparison.id,
        replayed=False,
        pairs=len(pairs),
        warnings=tuple(score_rank_conflicts(data)),
    )


def score_rank_conflicts(data: ComparisonSubmit) -> list[str]:
    """Pointed out, never fixed: a response ranked above another but scored lower."""
    if data.all_unacceptable:
        return []
    found = []
    for better in data.items:
        for worse in data.items:
            if (
                better.rank is not None
                and worse.rank is not None
                and better.rank < worse.rank
                and better.score < worse.score
            ):
                found.append(
                    f"response {better.response_id} is ranked above response "
                    f"{worse.response_id} but scored lower ({better.score} < {worse.score})"
                )
    return found


def _finish(db: Session, assignment: Assignment, now: datetime, idle_seconds: float) -> None:
    if assignment.status == AssignmentStatus.expired:
        # A late label is kept. If the labeler has meanwhile leased the same task again, that
        # newer lease is released: the work was done under this one.
        db.execute(
            update(Assignment)
            .where(
                Assignment.task_id == assignment.task_id,
                Assignment.labeler_id == assignment.labeler_id,
                Assignment.status == AssignmentStatus.active,
                Assignment.id != assignment.id,
            )
            .values(status=AssignmentStatus.released, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    assignment.status = AssignmentStatus.submitted
    assignment.finished_at = now
    assignment.idle_seconds = idle_seconds


def _adapt_overlap(db: Session, task: Task, queue: Queue) -> None:
    """One more labeler for a task whose rankings disagree (tau below the queue's threshold),
    once its planned labels are in, up to the queue's max_overlap."""
    if queue.disagreement_tau is None or task.overlap >= queue.max_overlap:
        return
    rows = db.execute(
        select(ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.rank)
        .join(Comparison, Comparison.id == ComparisonItem.comparison_id)
        .join(Assignment, Assignment.id == Comparison.assignment_id)
        .where(
            Comparison.task_id == task.id,
            Comparison.all_unacceptable.is_(False),
            Assignment.status == AssignmentStatus.submitted,
        )
    ).all()
    rankings: dict[int, dict[int, int]] = {}
    for comparison_id, response_id, rank in rows:
        rankings.setdefault(comparison_id, {})[response_id] = rank
    if len(rankings) < task.overlap:
        return
    ids = sorted(next(iter(rankings.values())))
    vectors = [[ranking[response] for response in ids] for ranking in rankings.values()]
    taus = [
        tau
        for index, first in enumerate(vectors)
        for second in vectors[index + 1 :]
        if (tau := kendall_tau_b(first, second)) is not None
    ]
    if taus and min(taus) < queue.disagreement_tau:
        task.overlap += 1


def submit_demonstration(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: DemonstrationSubmit,
    *,
    now: datetime | None = None,
) -> Submitted:
    now = now or utcnow()
    replay = _replay(db, Demonstration, data.idempotency_key, labeler)
    if replay is not None:
        return replay
    ctx = _open_for_submit(db, assignment_id, labeler, QueueKind.demonstration)
    if data.draft_response_id is not None:
        draft = db.get(Response, data.draft_response_id)
        if draft is None or draft.prompt_id != ctx.task.prompt_id:
            raise InvalidInput(f"response {data.draft_response_id} is not a draft for this prompt")
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
        guideline_version_id=current_guideline_id(db, ctx.project.id),
        time_spent_seconds=_time_spent(ctx.assignment, now, data.idle_seconds),
        idempotency_key=data.idempotency_key,
    )
    db.add(demonstration)
    _finish(db, ctx.assignment, now, data.idle_seconds)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        replay = _replay(db, Demonstration, data.idempotency_key, labeler)
        if replay is not None:
            return replay
        raise Conflict(f"assignment {assignment_id} was submitted meanwhile") from None
    return Submitted(ctx.assignment.id, demonstration.id, replayed=False)


def skip_assignment(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: SkipSubmit,
    *,
    now: datetime | None = None,
) -> Assignment:
    """The task goes back to the queue for others; this labeler will not be offered it again."""
    assignment = get_own_assignment(db, assignment_id, labeler)
    if assignment.status not in (AssignmentStatus.active, AssignmentStatus.expired):
        raise Conflict(f"assignment {assignment.id} is {assignment.status.value}")
    assignment.status = AssignmentStatus.skipped
    assignment.finished_at = now or utcnow()
    assignment.skip_reason = data.reason.value
    assignment.skip_note = data.note or None
    db.commit()
    return assignment


def requeue_superseded(db: Session, queue_id: int) -> int:
    """Tasks judged under anything but the project's current guideline need new judgements:
    their submitted assignments become 'superseded' (the labels stay) so the slots reopen."""
    queue = db.get(Queue, queue_id)
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


def assignment_view(
    db: Session, assignment: Assignment
) -> tuple[Task, Queue, Prompt, list[Response]]:
    task = db.get(Task, assignment.task_id)
    assert task is not None
    queue = db.get(Queue, task.queue_id)
    prompt = db.get(Prompt, task.prompt_id)
    assert queue is not None and prompt is not None
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
