"""Keep admins' reviews of labels: accepted, or rejected with a reason

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=True),
        sa.Column("demonstration_id", sa.Integer(), nullable=True),
        sa.Column(
            "verdict",
            sa.Enum(
                "accepted",
                "rejected",
                name="review_verdict",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(comparison_id IS NULL) <> (demonstration_id IS NULL)",
            name=op.f("ck_label_reviews_one_label"),
        ),
        sa.CheckConstraint(
            "verdict <> 'rejected' OR length(trim(reason)) > 0",
            name=op.f("ck_label_reviews_rejection_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparisons.id"],
            name=op.f("fk_label_reviews_comparison_id_comparisons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["demonstration_id"],
            ["demonstrations.id"],
            name=op.f("fk_label_reviews_demonstration_id_demonstrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name=op.f("fk_label_reviews_reviewer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_reviews")),
        sa.UniqueConstraint("comparison_id", name=op.f("uq_label_reviews_comparison_id")),
        sa.UniqueConstraint("demonstration_id", name=op.f("uq_label_reviews_demonstration_id")),
    )
    with op.batch_alter_table("label_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_reviews_reviewer_id"), ["reviewer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("label_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_reviews_reviewer_id"))
    op.drop_table("label_reviews")
