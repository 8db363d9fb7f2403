"""Taking a comparison back: scores, a ranking (ties allowed), flags, a comment and rewrites,
expanded into pairs; and asking for one more labeler where rankings disagree.

The shared steps (ownership, lease expiry, idempotent replay, the commit) are in
app/services/submitting.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    LabelSource,
    Pair,
    Queue,
    QueueKind,
    Response,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit
from app.services.agreement.metrics import kendall_tau_b
from app.services.pairs import RankedResponse, dense_ranks, expand_pairs
from app.services.rewrites import add_rewrites, check_rewrites
from app.services.submitting import (
    Submitted,
    commit_label,
    finish_assignment,
    open_for_submit,
    replay_of,
    time_spent,
)
from app.services.task_agreement import record_task_agreement


def submit_comparison(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: ComparisonSubmit,
    *,
    now: datetime | None = None,
) -> Submitted:
    now = now or utcnow()
    replay = replay_of(db, Comparison, data.idempotency_key, labeler)
    if replay is not None:
        return replay
    ctx = open_for_submit(db, assignment_id, labeler, QueueKind.comparison, now)
    shown = {
        response.id: response
        for response in db.scalars(
            select(Response)
            .join(TaskResponse, TaskResponse.response_id == Response.id)
            .where(TaskResponse.task_id == ctx.task.id)
        )
    }
    given = {item.response_id for item in data.items}
    if given != set(shown):
        raise InvalidInput(
            "judge exactly the task's responses: "
            f"missing {sorted(set(shown) - given)}, unknown {sorted(given - set(shown))}"
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
    check_rewrites(data.rewrites, shown)

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
        guideline_version_id=ctx.guideline_version_id,
        all_unacceptable=data.all_unacceptable,
        comment=data.comment.strip(),
        time_spent_seconds=time_spent(ctx.assignment, now, data.idle_seconds),
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
        db.add_all(
            Pair(
                comparison_id=comparison.id,
                prompt_id=ctx.task.prompt_id,
                winner_response_id=pair.winner_response_id,
                loser_response_id=pair.loser_response_id,
                margin=pair.margin,
            )
            for pair in pairs
        )
    rewrites = add_rewrites(db, comparison, data.rewrites, labeler)
    finish_assignment(db, ctx.assignment, now, data.idle_seconds)
    db.flush()
    record_task_agreement(db, ctx.task.id)
    _adapt_overlap(db, ctx.task, ctx.queue)
    replay = commit_label(db, Comparison, data.idempotency_key, labeler, assignment_id)
    if replay is not None:
        return replay
    return Submitted(
        ctx.assignment.id,
        comparison.id,
        replayed=False,
        pairs=len(pairs),
        warnings=tuple(score_rank_conflicts(data)),
        rewrites=tuple(rewrites),
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
