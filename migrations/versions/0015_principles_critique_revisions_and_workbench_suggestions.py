"""Principles, critique runs' revisions, and the judge's suggestions in the workbench

A project's principles (versions never edited in place), each revision a critique run made
(the principle, the critique and the "revision ≻ original" comparison), a queue's suggestion
mode (off, after submit, before), and on a labeler's comparison the mode it was made under and
the AI comparison it was measured against. On SQLite batch mode rebuilds `comparisons` and
`queues` (foreign keys off meanwhile: migrations/env.py); neither carries triggers.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("retired_at IS NULL")


def _mode(name: str) -> sa.Enum:
    return sa.Enum(
        "off", "after", "before", name=name, native_enum=False, create_constraint=True, length=32
    )


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        server_default=sa.text("(CURRENT_TIMESTAMP)"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "principles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("critique_request", sa.Text(), nullable=False),
        sa.Column("revision_request", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.CheckConstraint("length(name) > 0", name=op.f("ck_principles_name_not_empty")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_principles_version_positive")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_principles_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["principles.id"], name=op.f("fk_principles_previous_id_principles")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_principles_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principles")),
        sa.UniqueConstraint("previous_id", name=op.f("uq_principles_previous_id")),
    )
    with op.batch_alter_table("principles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_principles_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            "uq_principles_project_id_live_name",
            ["project_id", "name"],
            unique=True,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )

    op.create_table(
        "response_revisions",
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("original_response_id", sa.Integer(), nullable=False),
        sa.Column("principle_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("critique", sa.Text(), nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "response_id <> original_response_id",
            name=op.f("ck_response_revisions_revises_another"),
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_response_revisions_comparison_id_comparisons"),
        ),
        sa.ForeignKeyConstraint(
            ["original_response_id"],
            ["responses.id"],
            name=op.f("fk_response_revisions_original_response_id_responses"),
        ),
        sa.ForeignKeyConstraint(
            ["principle_id"],
            ["principles.id"],
            name=op.f("fk_response_revisions_principle_id_principles"),
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_response_revisions_response_id_responses"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_response_revisions_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_response_revisions")),
        sa.UniqueConstraint("comparison_id", name=op.f("uq_response_revisions_comparison_id")),
    )
    with op.batch_alter_table("response_revisions", schema=None) as batch_op:
        for column in ("original_response_id", "principle_id", "run_id"):
            batch_op.create_index(
                batch_op.f(f"ix_response_revisions_{column}"), [column], unique=False
            )

    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suggestion_mode", _mode("comparison_suggestion_mode"), nullable=True)
        )
        batch_op.add_column(sa.Column("suggestion_comparison_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_comparisons_suggestion_comparison_id"),
            ["suggestion_comparison_id"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_comparisons_suggestion_comparison_id_comparisons"),
            "comparisons",
            ["suggestion_comparison_id"],
            ["id"],
        )
        batch_op.create_check_constraint(
            op.f("ck_comparisons_suggestion_recorded_whole"),
            "(suggestion_mode IS NULL AND suggestion_comparison_id IS NULL) OR "
            "(suggestion_mode IN ('after', 'before') AND suggestion_comparison_id IS NOT NULL)",
        )

    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "suggestion_mode", _mode("suggestion_mode"), server_default="off", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_queues_suggestion_mode"), type_="check")
        batch_op.drop_column("suggestion_mode")

    with op.batch_alter_table("comparisons", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_comparisons_suggestion_recorded_whole"), type_="check")
        batch_op.drop_constraint(op.f("ck_comparisons_comparison_suggestion_mode"), type_="check")
        batch_op.drop_constraint(
            batch_op.f("fk_comparisons_suggestion_comparison_id_comparisons"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_comparisons_suggestion_comparison_id"))
        batch_op.drop_column("suggestion_comparison_id")
        batch_op.drop_column("suggestion_mode")

    op.drop_table("response_revisions")
    with op.batch_alter_table("principles", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_principles_project_id_live_name", sqlite_where=LIVE, postgresql_where=LIVE
        )
        batch_op.drop_index(batch_op.f("ix_principles_project_id"))
    op.drop_table("principles")
