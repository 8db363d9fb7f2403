"""Command groups of the `smiley` CLI that live outside app/cli.py, and what they share.

Each module exposes `register(cli)`, which app/cli.py calls once. The helpers here are the
same as app/cli.py's own (`fail`, `session`): a module here cannot import them from app/cli.py,
which imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.db import get_engine, session_factory
from app.errors import DomainError
from app.models import Role, User
from app.services import users

STAFF = (Role.admin, Role.researcher)


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@contextmanager
def session() -> Iterator[Session]:
    """A database session whose domain and validation errors end the command with `error: …`."""
    with session_factory(get_engine())() as db:
        try:
            yield db
        except DomainError as error:
            raise fail(error.message) from None
        except ValidationError as error:
            raise fail("; ".join(_problem(problem) for problem in error.errors())) from None


def _problem(problem: Any) -> str:
    """`field: message`, or the message alone for a rule about the whole input."""
    message = str(problem["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {message}" if where else message


def acting_user(db: Session, username: str | None) -> User:
    """The staff account a command acts as: the one named, else the oldest active admin (the
    one `smiley up` made), so that a single-person install needs no --as."""
    if username is not None:
        user = users.get_user_by_username(db, username)
    else:
        admins = [
            user for user in users.list_users(db, include_inactive=False) if user.role == Role.admin
        ]
        if not admins:
            raise fail("there is no active admin; name a researcher or admin with --as")
        user = min(admins, key=lambda admin: admin.id)
    if not user.is_active:
        raise fail(f"{user.username} is deactivated")
    if user.role not in STAFF:
        raise fail(f"{user.username} is a {user.role.value}; this needs a researcher or admin")
    return user
