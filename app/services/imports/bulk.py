"""Bulk inserts for imports: ids chosen up front, one executemany (SQLite) or COPY
(PostgreSQL) per table and batch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.models.base import utcnow


def inserted_ids(db: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Inserts rows with ids chosen first, so one executemany stores a whole batch (RETURNING
    with the rows' order kept costs SQLite a statement per row)."""
    if not rows:
        return []
    ids = _allocate_ids(db, table, len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    bulk_insert(db, table, rows)
    return ids


def bulk_insert(db: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany of rows that all have the same keys. The statement is compiled once and
    each value goes through its column type's own bind processor, which is what a Core insert
    does, without the per-row bookkeeping that costs more than the database's own work here."""
    if not rows:
        return
    connection = db.connection()
    dialect = connection.dialect
    names = list(rows[0])
    processors = {
        name: processor
        for name in names
        if (processor := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
        is not None
    }
    for row in rows:
        for name, processor in processors.items():
            row[name] = processor(row[name])
    if "created_at" in table.c and "created_at" not in names:
        # One timestamp for the batch, converted once.
        stamp = table.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        now = stamp(utcnow()) if stamp is not None else utcnow()
        for row in rows:
            row["created_at"] = now
        names.append("created_at")
    if dialect.name == "postgresql":
        # COPY is several times faster than executemany, inside the same transaction.
        driver = connection.connection.driver_connection
        statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([row[name] for name in names])
        return
    compiled = insert(table).compile(dialect=dialect, column_keys=names)
    if compiled.positional:
        order = compiled.positiontup or []
        connection.exec_driver_sql(str(compiled), [tuple(row[n] for n in order) for row in rows])
    else:
        connection.exec_driver_sql(str(compiled), rows)  # type: ignore[arg-type]


def _allocate_ids(db: Session, table: Any, count: int) -> list[int]:
    if db.get_bind().dialect.name == "postgresql":
        # nextval hands out ids no other transaction will get, so concurrent inserts are safe.
        return list(
            db.execute(
                select(func.nextval(func.pg_get_serial_sequence(table.name, "id"))).select_from(
                    func.generate_series(1, count)
                )
            ).scalars()
        )
    # SQLite: every transaction begins IMMEDIATE (app/db.py), so this one holds the write lock
    # and the next ids after the largest are its own, as SQLite would have chosen them.
    largest = db.scalar(select(func.max(table.c.id))) or 0
    return list(range(largest + 1, largest + 1 + count))
