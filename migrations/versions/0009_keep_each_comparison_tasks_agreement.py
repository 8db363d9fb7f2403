"""Keep each comparison task's pairwise agreement (filled for past comparisons); index time spent

One row per task with a labeler comparison (app/models/agreement.py), kept up to date by every
comparison submit from now on. The backfill below is the agreement report's definition
(app/services/agreement/metrics.py) in SQL: each labeler's latest counting comparison of the
task (labeler source, not all unacceptable); a response pair that labeler ranked both sides
of, differently; every two labelers who ordered the same response pair are one labeler pair,
agreeing when they ordered it the same way. tests/services/test_task_agreement.py checks the
backfill against the report's figures.

The index on comparisons.time_spent_seconds serves the review queue's "faster than N seconds"
(most comparisons take longer, so without it a page of the queue reads every comparison to
find the few fast ones).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
WITH ranked AS (
    SELECT id, task_id,
           row_number() OVER (
               PARTITION BY task_id, labeler_id ORDER BY created_at DESC, id DESC
           ) AS newest
    FROM comparisons
    WHERE task_id IS NOT NULL AND source = 'labeler' AND NOT all_unacceptable
      AND labeler_id IS NOT NULL
),
votes AS (
    SELECT ranked.task_id, ranked.id AS judgement,
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
    SELECT u.task_id,
           SUM(CASE WHEN u.preference = v.preference THEN 1 ELSE 0 END) AS agreeing,
           COUNT(*) AS labeler_pairs
    FROM votes AS u
    JOIN votes AS v
      ON v.task_id = u.task_id AND v.low_response = u.low_response
     AND v.high_response = u.high_response AND u.judgement < v.judgement
    GROUP BY u.task_id, u.low_response, u.high_response
),
per_task AS (
    SELECT task_id, SUM(agreeing) AS agreeing, SUM(labeler_pairs) AS labeler_pairs,
           COUNT(*) AS response_pairs
    FROM response_pairs
    GROUP BY task_id
),
judged AS (
    SELECT DISTINCT task_id FROM comparisons
    WHERE task_id IS NOT NULL AND source = 'labeler'
)
INSERT INTO task_agreements (task_id, agreeing, labeler_pairs, response_pairs, rate)
SELECT judged.task_id,
       COALESCE(per_task.agreeing, 0),
       COALESCE(per_task.labeler_pairs, 0),
       COALESCE(per_task.response_pairs, 0),
       CAST(per_task.agreeing AS FLOAT) / CAST(per_task.labeler_pairs AS FLOAT)
FROM judged
LEFT JOIN per_task ON per_task.task_id = judged.task_id
"""


def upgrade() -> None:
    op.create_table(
        "task_agreements",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("agreeing", sa.Integer(), nullable=False),
        sa.Column("labeler_pairs", sa.Integer(), nullable=False),
        sa.Column("response_pairs", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "agreeing >= 0 AND agreeing <= labeler_pairs AND response_pairs >= 0",
            name=op.f("ck_task_agreements_counts_consistent"),
        ),
        sa.CheckConstraint(
            "(labeler_pairs = 0 AND rate IS NULL) "
            "OR (labeler_pairs > 0 AND rate >= 0 AND rate <= 1)",
            name=op.f("ck_task_agreements_rate_of_the_counts"),
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_agreements_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_agreements")),
    )
    op.create_index(op.f("ix_task_agreements_rate"), "task_agreements", ["rate"])
    op.execute(BACKFILL)
    op.create_index(
        op.f("ix_comparisons_time_spent_seconds"), "comparisons", ["time_spent_seconds"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_comparisons_time_spent_seconds"), table_name="comparisons")
    op.drop_index(op.f("ix_task_agreements_rate"), table_name="task_agreements")
    op.drop_table("task_agreements")
