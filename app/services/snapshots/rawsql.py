"""Reading a query's rows as plain tuples from the driver's cursor, in batches.

SQLAlchemy's Row objects and result processing cost more per row than everything else a
million-row export does with them, so the hot queries go to the DBAPI cursor directly, inside
the session's transaction. Only columns that need no result processing (integers, floats,
text) may be selected; parameters still go through their types' bind processing (a
datetime filter is stored as text on SQLite). On PostgreSQL the cursor is a named,
server-side one, so memory stays bounded by the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session


def raw_batches(db: Session, query: Select, size: int, name: str) -> Iterator[list[Any]]:
    if db.autoflush:
        db.flush()  # as Session.execute would: pending changes are part of what is read
    connection = db.connection()
    dialect = connection.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params: dict[str, Any] = compiled.construct_params()
    for key, value in params.items():
        bind = compiled.binds.get(key)
        process = bind.type.bind_processor(dialect) if bind is not None else None
        if process is not None:
            params[key] = process(value)
    values: Any = params
    if compiled.positional:
        values = tuple(params[key] for key in compiled.positiontup or ())
    dbapi = connection.connection
    cursor = dbapi.cursor(name=name) if dialect.name == "postgresql" else dbapi.cursor()
    try:
        cursor.execute(compiled.string, values)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()
