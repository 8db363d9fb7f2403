"""Helpers shared by the page tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import Base


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as the database holds it (not as objects in memory)."""
    db.expire_all()
    return {
        table.name: [
            tuple(row) for row in db.execute(table.select().order_by(*table.primary_key.columns))
        ]
        for table in Base.metadata.sorted_tables
    }
