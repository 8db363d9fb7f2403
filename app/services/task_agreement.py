"""Keeping each comparison task's pairwise agreement in the database (TaskAgreement), so the
data browser's "agreement below x" and the review queue are indexed SQL conditions.

The figure is the agreement report's own (metrics.py, pairwise_agreement_by per task), from
the same judgements (loading.py: labeler comparisons, not imported ones, not "all
unacceptable", a labeler's latest comparison of the task only): a tie expresses no
preference, every two labelers who ordered a response pair make one labeler pair, and the
rate is agreeing labeler pairs / labeler pairs over all the task's response pairs.
tests/services/test_task_agreement.py checks it against the report's code.

Rejected labels count, as in the agreement report: agreement measures how far the labelers'
judgements agree, and the disagreement happened whether or not an admin later rejected one of
them (reviewing a label therefore leaves the figure alone). Rewrites are comparisons of no
task and imported comparisons have no labeler identity; neither counts, and neither changes a
task's figure.

`record_task_agreement` runs inside the transaction of every comparison submit: it takes the
task's row lock first (an upsert), so two labelers submitting the same task at once are
serialized, and then recomputes the figure in a statement of its own, which on PostgreSQL
(READ COMMITTED) reads a snapshot taken after the lock was granted: the second computes with
the first's comparison committed. The figure is computed by the database, in one statement
that is the migration's backfill (0009) restricted to one task, so a submit costs two
statements for it; on PostgreSQL the comparison's own INSERT takes the lock
(app/services/comparing.py), and the figure is one statement more."""

from __future__ import annotations

from sqlalchemy import Insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import TaskAgreement
from app.services.agreement.metrics import PairwiseAgreement

# The backfill of migrations/versions/0009 for one task (tests/services/test_task_agreement.py
# checks both against the agreement report): each labeler's latest counting comparison; the
# response pairs it ordered; every two labelers who ordered a pair one labeler pair. The last
# aggregate has no GROUP BY, so it gives one row (zeros) even for a task with no pair.
_STORE = text(
    """
WITH ranked AS (
    SELECT id,
           row_number() OVER (PARTITION BY labeler_id ORDER BY created_at DESC, id DESC)
               AS newest
    FROM comparisons
    WHERE task_id = :task_id AND source = 'labeler' AND NOT all_unacceptable
      AND labeler_id IS NOT NULL
),
votes AS (
    SELECT ranked.id AS judgement,
           low.response_id AS low_response, high.response_id AS high_response,
           CASE WHEN low.rank < high.rank THEN 1 ELSE -1 END AS preference
    FROM ranked
    JOIN comparison_items AS low ON low.comparison_id = ranked.id
    JOIN comparison_items AS high
      ON high.comparison_id = ranked.id AND low.response_id < high.response_id
    WHERE ranked.newest = 1 AND low.rank IS NOT NULL AND high.rank IS NOT NULL
      AND low.rank <> high.rank
),
response_pairs AS (
    SELECT SUM(CASE WHEN u.preference = v.preference THEN 1 ELSE 0 END) AS agreeing,
           COUNT(*) AS labeler_pairs
    FROM votes AS u
    JOIN votes AS v
      ON v.low_response = u.low_response AND v.high_response = u.high_response
     AND u.judgement < v.judgement
    GROUP BY u.low_response, u.high_response
),
per_task AS (
    SELECT COALESCE(SUM(agreeing), 0) AS agreeing,
           COALESCE(SUM(labeler_pairs), 0) AS labeler_pairs,
           COUNT(*) AS response_pairs
    FROM response_pairs
)
UPDATE task_agreements
SET agreeing = per_task.agreeing,
    labeler_pairs = per_task.labeler_pairs,
    response_pairs = per_task.response_pairs,
    rate = CASE WHEN per_task.labeler_pairs > 0
                THEN CAST(per_task.agreeing AS FLOAT) / CAST(per_task.labeler_pairs AS FLOAT)
           END
FROM per_task
WHERE task_agreements.task_id = :task_id
RETURNING task_agreements.agreeing, task_agreements.labeler_pairs,
          task_agreements.response_pairs
"""
)


def record_task_agreement(db: Session, task_id: int) -> PairwiseAgreement:
    """Recomputes and stores the task's pairwise agreement in the caller's transaction (the
    caller commits); returns it."""
    db.execute(lock_task_agreement(db.get_bind().dialect.name, task_id))
    return store_task_agreement(db, task_id)


def lock_task_agreement(dialect: str, task_id: int) -> Insert:
    """The statement that creates the task's row if it has none and holds its lock until the
    commit (a CTE of the comparison's INSERT on PostgreSQL)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(TaskAgreement).values(
        task_id=task_id, agreeing=0, labeler_pairs=0, response_pairs=0, rate=None
    )
    # Updating the row on conflict, rather than doing nothing, takes its row lock on
    # PostgreSQL; SQLite has one writer at a time anyway.
    return statement.on_conflict_do_update(
        index_elements=[TaskAgreement.task_id], set_={"task_id": statement.excluded.task_id}
    )


def store_task_agreement(db: Session, task_id: int) -> PairwiseAgreement:
    """Recomputes the figure of a task whose row this transaction holds locked (taken by an
    earlier statement: see the module's docstring), stores it and returns it."""
    agreeing, labeler_pairs, response_pairs = db.execute(_STORE, {"task_id": task_id}).one()
    return PairwiseAgreement(agreeing, labeler_pairs, response_pairs)
