"""AI labels (source "ai", naming their model and run), and judge and critique runs

Sources and run kinds are VARCHARs with CHECK constraints (app.models.base.str_enum): a new value
is a new constraint, and batch mode rebuilds the table on SQLite (with foreign keys off while it
does: migrations/env.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

KINDS_BEFORE = ("sft", "reward", "dpo", "ppo", "rloo", "grpo", "generate", "score")
KINDS_AFTER = (*KINDS_BEFORE, "judge", "critique")
SOURCES_BEFORE = ("labeler", "import")
SOURCES_AFTER = (*SOURCES_BEFORE, "ai")
LABEL_TABLES = {"comparisons": "comparison_source", "demonstrations": "demonstration_source"}

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _allow("runs", "run_kind", "kind", KINDS_AFTER)
    for table, constraint in LABEL_TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("model_id", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("run_id", sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f"ix_{table}_model_id"), ["model_id"], unique=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_run_id"), ["run_id"], unique=False)
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_model_id_models"), "models", ["model_id"], ["id"]
            )
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_run_id_runs"), "runs", ["run_id"], ["id"]
            )
            batch_op.drop_constraint(op.f(f"ck_{table}_{constraint}"), type_="check")
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_{constraint}"), _in("source", SOURCES_AFTER)
            )
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_ai_has_model"), "source <> 'ai' OR model_id IS NOT NULL"
            )


def downgrade() -> None:
    # AI labels cannot exist under the old constraints: they go, and so do judge and critique
    # runs with their metrics. Foreign keys are off on SQLite while migrating (env.py), so what
    # refers to them is deleted here, not by ON DELETE CASCADE.
    ai = "SELECT id FROM comparisons WHERE source = 'ai'"
    op.execute(
        f"UPDATE comparisons SET rewrite_in_comparison_id = NULL WHERE rewrite_in_comparison_id IN ({ai})"
    )
    for table, column in (
        ("comparison_items", "comparison_id"),
        ("pairs", "comparison_id"),
        ("label_reviews", "comparison_id"),
    ):
        op.execute(f"DELETE FROM {table} WHERE {column} IN ({ai})")
    op.execute(
        "DELETE FROM label_reviews WHERE demonstration_id IN "
        "(SELECT id FROM demonstrations WHERE source = 'ai')"
    )
    for table in LABEL_TABLES:
        op.execute(f"DELETE FROM {table} WHERE source = 'ai'")
    op.execute(
        "DELETE FROM run_metrics WHERE run_id IN "
        "(SELECT id FROM runs WHERE kind IN ('judge', 'critique'))"
    )
    op.execute("DELETE FROM runs WHERE kind IN ('judge', 'critique')")
    for table, constraint in LABEL_TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_ai_has_model"), type_="check")
            batch_op.drop_constraint(op.f(f"ck_{table}_{constraint}"), type_="check")
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_{constraint}"), _in("source", SOURCES_BEFORE)
            )
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_run_id_runs"), type_="foreignkey")
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_model_id_models"), type_="foreignkey")
            batch_op.drop_index(batch_op.f(f"ix_{table}_run_id"))
            batch_op.drop_index(batch_op.f(f"ix_{table}_model_id"))
            batch_op.drop_column("run_id")
            batch_op.drop_column("model_id")
    _allow("runs", "run_kind", "kind", KINDS_BEFORE)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


def _allow(table: str, constraint: str, column: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{table}_{constraint}"), type_="check")
        batch_op.create_check_constraint(op.f(f"ck_{table}_{constraint}"), _in(column, values))
