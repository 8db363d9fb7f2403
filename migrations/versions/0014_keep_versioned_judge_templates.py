"""Keep each project's judge prompt templates, versioned, and the version each AI label used

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "judge_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_judge_templates_version_positive")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_judge_templates_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_judge_templates_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_templates")),
        sa.UniqueConstraint(
            "project_id", "version", name=op.f("uq_judge_templates_project_id_version")
        ),
    )
    with op.batch_alter_table("judge_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_judge_templates_project_id"), ["project_id"], unique=False
        )
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judge_template_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_comparisons_judge_template_id_judge_templates"),
            "judge_templates",
            ["judge_template_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_comparisons_judge_template_id_judge_templates"), type_="foreignkey"
        )
        batch_op.drop_column("judge_template_id")
    with op.batch_alter_table("judge_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_judge_templates_project_id"))
    op.drop_table("judge_templates")
