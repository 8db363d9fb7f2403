"""Reading a query's rows as plain tuples from the driver's cursor, in batches.

SQLAlchemy's Row objects and result processing cost more per row than everything else a
million-row export does with them, so the hot queries go to the DBAPI cursor directly, inside
the session's transaction. Only columns that need no result processing (integers, floats,
text) may be selected; parameters still go through their types' bind processing (a
datetime filter is stored as text on SQLite). On PostgreSQL the cursor is a named,
server-side one, so memory stays bounded by the batch.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, literal_column
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


def ids_in(column: ColumnElement[int], ids: np.ndarray) -> ColumnElement[bool]:
    """`column IN (…)` with the ids written into the SQL text rather than bound one by one:
    compiling an expanding IN of 10,000 bound parameters costs more than running the query,
    and the ids are integers (checked here), so writing them inline is safe."""
    if ids.dtype.kind not in "iu":
        raise TypeError("ids_in takes an integer array")
    if ids.size == 0:
        raise ValueError("ids_in needs at least one id")
    return column.op("IN")(literal_column(f"({','.join(map(str, ids.tolist()))})"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a stretch that makes a million short-lived
    tuples, lists and dicts (none of them in a cycle): it would otherwise walk them over and
    over as they are made, the largest single cost of reading rows into Python. Back on at the
    end, unless it was off already."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
