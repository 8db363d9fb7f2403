"""Helpers shared by the JSON API tests: exact bodies, database snapshots, paths with ids."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Base, Project, User

API = "/api/v1"

# Tables the API writes to; a refused request must leave every row of them as it was.
TRACKED_TABLES = ("users", "api_tokens", "user_sessions", "projects", "login_attempts")
# Touched by every successful token check (at most once a minute), refused request or not.
VOLATILE_COLUMNS = frozenset({"last_used_at", "last_seen_at"})

GENERATED_PASSWORD = re.compile(r"^[a-z2-9]{5}(-[a-z2-9]{5}){3}$")

Json = dict[str, Any]
ModelT = TypeVar("ModelT", bound=Base)


def error(code: str, message: str, field: str | None = None) -> Json:
    """The exact body of every API error."""
    return {"error": {"code": code, "message": message, "field": field}}


def validation_error(message: str, field: str | None) -> Json:
    """The exact body of a 422 for one invalid request field (pydantic's message inside)."""
    location = f"body.{field}" if field else "body"
    return {
        "error": {
            "code": "invalid_request",
            "message": f"{location}: {message}",
            "field": field,
            "problems": [
                {"location": location, "message": message, "type": _problem_type(message)}
            ],
        }
    }


def _problem_type(message: str) -> str:
    if message.startswith("Value error, "):
        return "value_error"
    if message == "Extra inputs are not permitted":
        return "extra_forbidden"
    if message == "Field required":
        return "missing"
    raise AssertionError(f"add the pydantic error type for {message!r}")


def iso(moment: datetime | None) -> str | None:
    """A UTC datetime as the API writes it."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> Json:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "is_active": user.is_active,
        "must_change_password": user.must_change_password,
        "created_at": iso(user.created_at),
    }


def _money(amount: Decimal | None) -> str | None:
    """A cost as the API writes it: a string with two decimal places."""
    return None if amount is None else f"{amount:.2f}"


def project_json(project: Project) -> Json:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "flags": project.label_schema["flags"],
        "is_archived": project.is_archived,
        "cost_per_demonstration": _money(project.cost_per_demonstration),
        "cost_per_comparison": _money(project.cost_per_comparison),
        "created_at": iso(project.created_at),
        "updated_at": iso(project.updated_at),
    }


def db_state(db: Session, tables: tuple[str, ...] = TRACKED_TABLES) -> dict[str, list[Json]]:
    """Every row of `tables` as a fresh request would see them.

    The app shares the test's session, so uncommitted changes are dropped first, as they would
    be when a real request's session closes without a commit; committed ones stay."""
    db.rollback()
    state: dict[str, list[Json]] = {}
    for name in tables:
        table = Base.metadata.tables[name]
        rows = db.execute(select(table).order_by(*table.primary_key.columns)).mappings()
        state[name] = [
            {key: value for key, value in row.items() if key not in VOLATILE_COLUMNS}
            for row in rows
        ]
    return state


def count(db: Session, model: type[Base], *where: Any) -> int:
    db.rollback()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def reload(db: Session, obj: ModelT) -> ModelT:
    """The object as stored, after dropping anything a request left uncommitted."""
    db.rollback()
    db.refresh(obj)
    return obj


PATH_PARAM = re.compile(r"{(\w+)}")


def fill_path(template: str, ids: dict[str, int]) -> str:
    """'/users/{user_id}' -> '/users/7'; fails loudly for a parameter with no id given."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        assert name in ids, f"no id for path parameter {name!r} in {template}; add one"
        return str(ids[name])

    return PATH_PARAM.sub(replace, template)
