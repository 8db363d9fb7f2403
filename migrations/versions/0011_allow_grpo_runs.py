"""Allow GRPO runs

RunKind is a VARCHAR with a CHECK constraint (app.models.base.str_enum), so a new kind is a new
constraint. Batch mode rebuilds the table on SQLite, which cannot alter a constraint in place.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

KINDS_BEFORE = ("sft", "reward", "dpo", "ppo", "rloo", "generate", "score")
KINDS_AFTER = ("sft", "reward", "dpo", "ppo", "rloo", "grpo", "generate", "score")

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _allow_run_kinds(KINDS_AFTER)


def downgrade() -> None:
    # GRPO runs cannot exist under the old constraint: they and their metrics go; a policy one
    # registered stays in the registry (models do not point at the run that made them).
    op.execute("DELETE FROM run_metrics WHERE run_id IN (SELECT id FROM runs WHERE kind = 'grpo')")
    op.execute("DELETE FROM runs WHERE kind = 'grpo'")
    _allow_run_kinds(KINDS_BEFORE)


def _allow_run_kinds(kinds: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_run_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_runs_run_kind"), f"kind IN ({allowed})")
