"""The per-process cache of checked API tokens: a repeat within the window costs no query, and
a revoked token or a deactivated user is refused within the window (at once where the change
was made in this process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from app.models import ApiToken, Role, User
from app.models.base import utcnow
from app.schemas.users import TokenCreate, UserUpdate
from app.services import auth, users
from app.services.auth import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def queries(db: Session) -> Iterator[list[str]]:
    ran: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Savepoints are the test's rolled-back transaction (tests/conftest.py `db`).
        if not statement.startswith("SAVEPOINT"):
            ran.append(statement)

    engine = db.get_bind().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_token_checked_within_the_window_costs_no_query(db: Session, labeler: User) -> None:
    _, token = auth.create_api_token(db, labeler, TokenCreate(name="script"))
    clock = Clock()
    cache = TokenCache(clock)
    first = cache.resolve(db, token, 1.0)
    assert first is not None and first.id == labeler.id
    with queries(db) as ran:
        clock.now += 0.99
        again = cache.resolve(db, token, 1.0)
        assert ran == []
        clock.now += 0.02
        later = cache.resolve(db, token, 1.0)
        assert [statement.split()[:2] for statement in ran] == [["SELECT", "api_tokens.id,"]]
    assert again is not None and later is not None
    assert (again.id, again.role, later.id) == (labeler.id, Role.labeler, labeler.id)


def test_a_token_revoked_elsewhere_is_refused_within_a_second(db: Session, labeler: User) -> None:
    record, token = auth.create_api_token(db, labeler, TokenCreate(name="script"))
    clock = Clock()
    cache = TokenCache(clock)
    assert cache.resolve(db, token, 1.0) is not None
    # Another web process revokes it: nothing tells this one.
    db.execute(update(ApiToken).where(ApiToken.id == record.id).values(revoked_at=utcnow()))
    db.commit()
    clock.now += 0.5
    assert cache.resolve(db, token, 1.0) is not None
    clock.now += 0.5
    assert cache.resolve(db, token, 1.0) is None


def test_a_user_deactivated_elsewhere_is_refused_within_a_second(
    db: Session, labeler: User
) -> None:
    _, token = auth.create_api_token(db, labeler, TokenCreate(name="script"))
    clock = Clock()
    cache = TokenCache(clock)
    assert cache.resolve(db, token, 1.0) is not None
    db.execute(update(User).where(User.id == labeler.id).values(is_active=False))
    db.commit()
    db.expire_all()
    clock.now += 1.0
    assert cache.resolve(db, token, 1.0) is None


def test_changes_made_in_this_process_take_effect_at_once(
    db: Session, labeler: User, admin: User
) -> None:
    revoked, token = auth.create_api_token(db, labeler, TokenCreate(name="one"))
    _, other = auth.create_api_token(db, labeler, TokenCreate(name="two"))
    cache = auth.token_cache
    assert cache.resolve(db, token, 1.0) is not None
    assert cache.resolve(db, other, 1.0) is not None
    auth.revoke_api_token(db, labeler, revoked.id)
    assert cache.resolve(db, token, 1.0) is None
    assert cache.resolve(db, other, 1.0) is not None
    users.update_user(db, labeler.id, UserUpdate(is_active=False), acting=admin)
    assert cache.resolve(db, other, 1.0) is None


def test_without_a_window_every_check_queries(db: Session, labeler: User) -> None:
    _, token = auth.create_api_token(db, labeler, TokenCreate(name="script"))
    cache = TokenCache(Clock())
    assert cache.resolve(db, token, 0) is not None
    db.execute(update(User).where(User.id == labeler.id).values(is_active=False))
    db.commit()
    db.expire_all()
    assert cache.resolve(db, token, 0) is None


def test_a_token_is_cached_no_longer_than_it_lives(db: Session, labeler: User) -> None:
    record, token = auth.create_api_token(db, labeler, TokenCreate(name="script"))
    record.expires_at = utcnow() + timedelta(seconds=0.3)
    db.commit()
    cache = TokenCache()
    assert cache.resolve(db, token, 1.0) is not None
    time.sleep(0.35)
    assert cache.resolve(db, token, 1.0) is None
