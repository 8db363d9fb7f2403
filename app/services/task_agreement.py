"""Keeping each comparison task's pairwise agreement in the database (TaskAgreement), so the
data browser's "agreement below x" and the review queue are indexed SQL conditions.

The figure is the agreement report's own (metrics.py, pairwise_agreement_by per task), from
the same judgements (loading.py: labeler comparisons, not imported ones, not "all
unacceptable", a labeler's latest comparison of the task only): a tie expresses no
preference, every two labelers who ordered a response pair make one labeler pair, and the
rate is agreeing labeler pairs / labeler pairs over all the task's response pairs. One task
holds a few judgements of a few responses, so it is counted here in plain Python (numpy's
per-call overhead would be most of the cost); tests/services/test_task_agreement.py checks it
against the report's code.

Rejected labels count, as in the agreement report: agreement measures how far the labelers'
judgements agree, and the disagreement happened whether or not an admin later rejected one of
them (reviewing a label therefore leaves the figure alone). Rewrites are comparisons of no
task and imported comparisons have no labeler identity; neither counts, and neither changes a
task's figure.

`record_task_agreement` runs inside the transaction of every comparison submit: it takes the
task's row lock first (an upsert), so two labelers submitting the same task at once are
serialized and the second computes with the first's comparison committed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import combinations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelSource, TaskAgreement
from app.services.agreement.metrics import PairwiseAgreement


def record_task_agreement(db: Session, task_id: int) -> PairwiseAgreement:
    """Recomputes and stores the task's pairwise agreement in the caller's transaction (the
    caller commits); returns it."""
    _lock_row(db, task_id)
    found = task_pairwise_agreement(db, task_id)
    db.execute(
        update(TaskAgreement)
        .where(TaskAgreement.task_id == task_id)
        .values(
            agreeing=found.agreeing,
            labeler_pairs=found.labeler_pairs,
            response_pairs=found.response_pairs,
            rate=found.rate,
        )
        .execution_options(synchronize_session=False)
    )
    return found


def _lock_row(db: Session, task_id: int) -> None:
    """Creates the task's row if it has none, and holds its lock until the commit."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(TaskAgreement).values(
        task_id=task_id, agreeing=0, labeler_pairs=0, response_pairs=0, rate=None
    )
    # Updating the row on conflict, rather than doing nothing, takes its row lock on
    # PostgreSQL; SQLite has one writer at a time anyway.
    db.execute(
        statement.on_conflict_do_update(
            index_elements=[TaskAgreement.task_id], set_={"task_id": statement.excluded.task_id}
        )
    )


def task_pairwise_agreement(db: Session, task_id: int) -> PairwiseAgreement:
    """The task's pairwise agreement from its counting judgements, as the report computes it."""
    rows = db.execute(
        select(
            Comparison.id,
            Comparison.labeler_id,
            Comparison.created_at,
            ComparisonItem.response_id,
            ComparisonItem.rank,
        )
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .where(
            Comparison.task_id == task_id,
            Comparison.source == LabelSource.labeler,
            Comparison.all_unacceptable.is_(False),
            Comparison.labeler_id.is_not(None),
        )
    ).all()
    # One labeler, one voice: only each labeler's latest comparison, by created_at and then
    # id, as load_ratings picks it.
    latest: dict[int, tuple[datetime, int]] = {}
    for comparison_id, labeler_id, created_at, _, _ in rows:
        key = (created_at, comparison_id)
        if labeler_id not in latest or key > latest[labeler_id]:
            latest[labeler_id] = key
    ranks: dict[int, dict[int, int]] = defaultdict(dict)  # judgement -> response -> rank
    for comparison_id, labeler_id, _, response_id, rank in rows:
        if latest[labeler_id][1] == comparison_id and rank is not None:
            ranks[comparison_id][response_id] = rank
    responses = sorted({response for ranked in ranks.values() for response in ranked})
    agreeing = labeler_pairs = response_pairs = 0
    for first, second in combinations(responses, 2):
        # Each judgement that ordered the pair: whether it put `first` above `second`.
        orders = [
            ranked[first] < ranked[second]
            for ranked in ranks.values()
            if first in ranked and second in ranked and ranked[first] != ranked[second]
        ]
        if len(orders) < 2:
            continue
        response_pairs += 1
        for one, other in combinations(orders, 2):
            labeler_pairs += 1
            agreeing += one == other
    return PairwiseAgreement(agreeing, labeler_pairs, response_pairs)
