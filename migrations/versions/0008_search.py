"""Search prompts and responses by full text, and page through one labeler's labels

The indexes on (labeler_id, id) of comparisons and demonstrations let the data browser's
newest-first pages of one labeler start at their first row (both databases). The data browser
(app/services/browsing.py) also matches `to_tsvector('simple', ...)` against `plainto_tsquery`;
the GIN indexes on the same expressions let PostgreSQL find the matching rows of a
million-row project without reading every prompt. SQLite searches with LIKE and
gets no index here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("comparisons", "demonstrations"):
        op.create_index(f"ix_{table}_labeler_id_id", table, ["labeler_id", "id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX ix_prompts_search ON prompts "
        "USING gin (to_tsvector('simple'::regconfig, messages))"
    )
    op.execute(
        "CREATE INDEX ix_responses_search ON responses "
        "USING gin (to_tsvector('simple'::regconfig, content))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_responses_search")
        op.execute("DROP INDEX ix_prompts_search")
    for table in ("demonstrations", "comparisons"):
        op.drop_index(f"ix_{table}_labeler_id_id", table_name=table)
