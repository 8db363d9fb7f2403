"""Taking a comparison back: scores, a ranking (ties allowed), flags, a comment and rewrites,
expanded into pairs; and asking for one more labeler where rankings disagree.

The shared steps (ownership, lease expiry, idempotent replay, the commit) are in
app/services/submitting.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    LabelSource,
    Pair,
    QueueKind,
    SuggestionMode,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit
from app.services.agreement.metrics import kendall_tau_b
from app.services.pairs import RankedResponse, dense_ranks, expand_pairs
from app.services.rewrites import add_rewrites, check_rewrites
from app.services.submitting import (
    Claimed,
    Submitted,
    claim_for_submit,
    commit_label,
    forget_loaded,
    replay_of,
    time_spent,
)
from app.services.task_agreement import (
    lock_task_agreement,
    record_task_agreement,
    store_task_agreement,
)


def submit_comparison(
    db: Session,
    assignment_id: int,
    labeler: User,
    data: ComparisonSubmit,
    *,
    now: datetime | None = None,
) -> Submitted:
    now = now or utcnow()
    claimed = claim_for_submit(
        db,
        assignment_id,
        labeler,
        QueueKind.comparison,
        Comparison,
        data.idempotency_key,
        now,
        data.idle_seconds,
        with_content=bool(data.rewrites),
    )
    if isinstance(claimed, Submitted):
        return claimed
    try:
        _check(data, claimed)
    except BaseException:
        # Nothing of a refused label stays: the assignment is active again, the draft kept.
        db.rollback()
        raise
    ranks = (
        dense_ranks([item.rank for item in data.items if item.rank is not None])
        if not data.all_unacceptable
        else [None] * len(data.items)
    )
    # Core inserts on the tables: the ORM's bulk and unit-of-work paths cost more CPU than the
    # plain rows they write.
    # The key taken by another label (another labeler's, or this one's retry that won a race)
    # inserts nothing here rather than failing the transaction; the claim is undone below.
    table = Comparison.__table__
    dialect = db.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    label = (
        upsert(table)
        .values(
            assignment_id=claimed.assignment_id,
            task_id=claimed.task_id,
            prompt_id=claimed.prompt_id,
            labeler_id=labeler.id,
            source=LabelSource.labeler,
            guideline_version_id=claimed.guideline_version_id,
            all_unacceptable=data.all_unacceptable,
            comment=data.comment.strip(),
            time_spent_seconds=time_spent(claimed.leased_at, now, data.idle_seconds),
            idempotency_key=data.idempotency_key,
            **_suggestion(claimed),
            # Given here: SQLAlchemy leaves the columns' Python-side defaults out of an INSERT
            # that carries a WITH.
            source_name="",
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[table.c.idempotency_key])
        .returning(table.c.id)
    )
    if dialect == "postgresql":
        # The task's stored agreement row, locked by the same round trip (a data-modifying
        # WITH runs once, after the claim took the assignment: the lock order stays claim,
        # then agreement); its figure is recomputed below, in a statement of its own.
        label = label.add_cte(lock_task_agreement(dialect, claimed.task_id).cte("agreement"))
    comparison_id = db.scalar(label)
    if comparison_id is None:
        db.rollback()
        replay = replay_of(db, Comparison, data.idempotency_key, labeler)
        if replay is not None:
            return replay
        raise Conflict(f"assignment {assignment_id} was submitted meanwhile")
    db.execute(
        insert(ComparisonItem.__table__),
        [
            {
                "comparison_id": comparison_id,
                "response_id": item.response_id,
                "score": item.score,
                "rank": rank,
                "flags": sorted(set(item.flags)),
                "flag_note": item.flag_note.strip(),
            }
            for item, rank in zip(data.items, ranks, strict=True)
        ],
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
    if pairs:
        db.execute(
            insert(Pair.__table__),
            [
                {
                    "comparison_id": comparison_id,
                    "prompt_id": claimed.prompt_id,
                    "winner_response_id": pair.winner_response_id,
                    "loser_response_id": pair.loser_response_id,
                    "margin": pair.margin,
                }
                for pair in pairs
            ],
        )
    rewrites: list[int] = []
    if data.rewrites:
        comparison = db.get(Comparison, comparison_id)
        assert comparison is not None
        rewrites = add_rewrites(db, comparison, data.rewrites, labeler)
        db.flush()
    if dialect == "postgresql":
        store_task_agreement(db, claimed.task_id)
    else:
        record_task_agreement(db, claimed.task_id)
    _adapt_overlap(db, claimed)
    replay = commit_label(db, Comparison, data.idempotency_key, labeler, assignment_id)
    if replay is not None:
        return replay
    return Submitted(
        claimed.assignment_id,
        comparison_id,
        replayed=False,
        pairs=len(pairs),
        warnings=tuple(score_rank_conflicts(data)),
        rewrites=tuple(rewrites),
        suggestion_comparison_id=_suggestion(claimed)["suggestion_comparison_id"],
    )


def _check(data: ComparisonSubmit, claimed: Claimed) -> None:
    """The label judges exactly the task's responses, with the project's flags."""
    shown = claimed.responses
    given = {item.response_id for item in data.items}
    if given != set(shown):
        raise InvalidInput(
            "judge exactly the task's responses: "
            f"missing {sorted(set(shown) - given)}, unknown {sorted(given - set(shown))}"
        )
    allowed_flags = {flag["key"] for flag in claimed.label_schema.get("flags", [])}
    for item in data.items:
        unknown = sorted(set(item.flags) - allowed_flags)
        if unknown:
            raise InvalidInput(
                f"unknown flag(s) {', '.join(unknown)} for response {item.response_id}"
            )
        if "other" in item.flags and not item.flag_note.strip():
            raise InvalidInput(f"say what 'other' means for response {item.response_id}")
    check_rewrites(data.rewrites, shown)


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


def _adapt_overlap(db: Session, claimed: Claimed) -> None:
    """One more labeler for a task whose rankings disagree (tau below the queue's threshold),
    once its planned labels are in, up to the queue's max_overlap."""
    if claimed.disagreement_tau is None or claimed.overlap >= claimed.max_overlap:
        return
    rows = db.execute(
        select(ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.rank)
        .join(Comparison, Comparison.id == ComparisonItem.comparison_id)
        .join(Assignment, Assignment.id == Comparison.assignment_id)
        .where(
            Comparison.task_id == claimed.task_id,
            Comparison.all_unacceptable.is_(False),
            Assignment.status == AssignmentStatus.submitted,
        )
    ).all()
    rankings: dict[int, dict[int, int]] = {}
    for comparison_id, response_id, rank in rows:
        rankings.setdefault(comparison_id, {})[response_id] = rank
    if len(rankings) < claimed.overlap:
        return
    ids = sorted(next(iter(rankings.values())))
    vectors = [[ranking[response] for response in ids] for ranking in rankings.values()]
    taus = [
        tau
        for index, first in enumerate(vectors)
        for second in vectors[index + 1 :]
        if (tau := kendall_tau_b(first, second)) is not None
    ]
    if taus and min(taus) < claimed.disagreement_tau:
        db.execute(
            update(Task)
            .where(Task.id == claimed.task_id)
            .values(overlap=Task.overlap + 1)
            .execution_options(synchronize_session=False)
        )
        forget_loaded(db, Task, claimed.task_id)


def _suggestion(claimed: Claimed) -> dict[str, Any]:
    """The suggestion this label is measured against: recorded when the queue shows the
    judge's ranking and the task has one, under the mode of this moment (never derived later
    from the queue's setting, which may change)."""
    if claimed.suggestion_mode == SuggestionMode.off or claimed.suggestion_comparison_id is None:
        return {"suggestion_mode": None, "suggestion_comparison_id": None}
    return {
        "suggestion_mode": claimed.suggestion_mode,
        "suggestion_comparison_id": claimed.suggestion_comparison_id,
    }
