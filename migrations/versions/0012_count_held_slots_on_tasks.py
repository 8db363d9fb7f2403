"""Count the slots each task's assignments hold, so that leasing costs the same whatever the
queue's size and history

A task's `held_slots` is the number of its assignments that are active or submitted (the ones
the unique index on (task_id, labeler_id) covers too). Triggers keep it, in the same
transaction as every insert, status change and delete of an assignment, whichever code path
makes it, so it cannot drift from the rows it counts. Leasing first marks leases past their end
expired, then picks from the partial index of tasks with a free slot: the scan no longer passes
over full tasks nor counts any assignment. The partial indexes on active assignments let the
expiry and the per-labeler lease cap read only live leases, not the whole history.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOLDS = "status IN ('active', 'submitted')"
OPEN = "retired_at IS NULL AND held_slots < overlap"
ACTIVE = "status = 'active'"

POSTGRES_TRIGGERS = f"""
CREATE FUNCTION count_held_slots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.{HOLDS} THEN
        UPDATE tasks SET held_slots = held_slots - 1 WHERE id = OLD.task_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.{HOLDS} THEN
        UPDATE tasks SET held_slots = held_slots + 1 WHERE id = NEW.task_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER assignments_count_held_slots_insert AFTER INSERT ON assignments
    FOR EACH ROW WHEN (NEW.{HOLDS}) EXECUTE FUNCTION count_held_slots();
CREATE TRIGGER assignments_count_held_slots_delete AFTER DELETE ON assignments
    FOR EACH ROW WHEN (OLD.{HOLDS}) EXECUTE FUNCTION count_held_slots();
CREATE TRIGGER assignments_count_held_slots_update AFTER UPDATE OF status, task_id ON assignments
    FOR EACH ROW WHEN ((OLD.{HOLDS}) IS DISTINCT FROM (NEW.{HOLDS}) OR OLD.task_id <> NEW.task_id)
    EXECUTE FUNCTION count_held_slots();
"""

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER assignments_count_held_slots_insert AFTER INSERT ON assignments
    WHEN NEW.{HOLDS}
    BEGIN UPDATE tasks SET held_slots = held_slots + 1 WHERE id = NEW.task_id; END""",
    f"""CREATE TRIGGER assignments_count_held_slots_delete AFTER DELETE ON assignments
    WHEN OLD.{HOLDS}
    BEGIN UPDATE tasks SET held_slots = held_slots - 1 WHERE id = OLD.task_id; END""",
    f"""CREATE TRIGGER assignments_count_held_slots_update AFTER UPDATE OF status, task_id
    ON assignments WHEN (OLD.{HOLDS}) <> (NEW.{HOLDS}) OR OLD.task_id <> NEW.task_id
    BEGIN
        UPDATE tasks SET held_slots = held_slots - (OLD.{HOLDS}) WHERE id = OLD.task_id;
        UPDATE tasks SET held_slots = held_slots + (NEW.{HOLDS}) WHERE id = NEW.task_id;
    END""",
)


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("held_slots", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE tasks SET held_slots = (SELECT count(*) FROM assignments "
        f"WHERE assignments.task_id = tasks.id AND assignments.{HOLDS})"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TRIGGERS)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
    op.create_index(
        "ix_tasks_open",
        "tasks",
        ["queue_id", sa.text("priority DESC"), "id"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    for name, column in (
        ("ix_assignments_active_expiry", "lease_expires_at"),
        ("ix_assignments_active_labeler", "labeler_id"),
    ):
        op.create_index(
            name,
            "assignments",
            [column],
            postgresql_where=sa.text(ACTIVE),
            sqlite_where=sa.text(ACTIVE),
        )


def downgrade() -> None:
    op.drop_index("ix_assignments_active_labeler", table_name="assignments")
    op.drop_index("ix_assignments_active_expiry", table_name="assignments")
    op.drop_index("ix_tasks_open", table_name="tasks")
    for kind in ("update", "delete", "insert"):
        op.execute(
            f"DROP TRIGGER assignments_count_held_slots_{kind}"
            + (" ON assignments" if op.get_bind().dialect.name == "postgresql" else "")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION count_held_slots()")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("held_slots")
