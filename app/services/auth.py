"""Logging in: password checks with a rate limit, browser sessions and API tokens."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached

from app.errors import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    RateLimited,
    WrongPassword,
)
from app.models import ApiToken, LoginAttempt, User, UserSession
from app.models.base import utcnow
from app.schemas.common import text_problem
from app.schemas.users import TokenCreate
from app.security import hash_password, needs_rehash, new_token, token_hash, verify_password
from app.settings import Settings

TOKEN_PREFIX = "smy_"
WRONG_CREDENTIALS = "wrong username or password"


@dataclass(frozen=True)
class NewSession:
    token: str
    session: UserSession


def authenticate(
    db: Session, settings: Settings, *, username: str, password: str, client_ip: str
) -> User:
    """Checks a username and password; counts failures per username and per address."""
    _refuse_unstorable(username=username, password=password)
    username = username.strip().lower()[:64]
    client_ip = client_ip[:64]
    _check_rate_limit(db, settings, username=username, client_ip=client_ip)
    user = db.scalar(select(User).where(User.username == username))
    password_ok = verify_password(user.password_hash if user else None, password)
    logged_in = password_ok and user is not None and user.is_active
    db.add(LoginAttempt(username=username, client_ip=client_ip, succeeded=logged_in))
    db.commit()
    if not password_ok or user is None:
        raise AuthenticationFailed(WRONG_CREDENTIALS)
    # Only someone who knows the password learns that the account is deactivated.
    if not user.is_active:
        raise AuthenticationFailed("this account is deactivated; ask an admin")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.commit()
    return user


def check_current_password(
    db: Session, settings: Settings, user: User, password: str, *, client_ip: str
) -> None:
    """Re-checks the password of a signed-in user (before a password change).

    Failures count towards the same limits as failed logins: a stolen session or token must
    not become a way to guess the password without limit."""
    _refuse_unstorable(current_password=password)
    client_ip = client_ip[:64]
    _check_rate_limit(db, settings, username=user.username, client_ip=client_ip)
    if verify_password(user.password_hash, password):
        return
    db.add(LoginAttempt(username=user.username, client_ip=client_ip, succeeded=False))
    db.commit()
    raise WrongPassword("the current password is wrong", field="current_password")


def _refuse_unstorable(**fields: str) -> None:
    """422 naming the field for a NUL byte or a lone surrogate, before anything is looked up:
    PostgreSQL refuses the first in a query and argon2 cannot encode the second (both were
    500s, before login). The form and the JSON body both end up here."""
    for field, value in fields.items():
        if problem := text_problem(value):
            raise InvalidInput(f"{field}: {problem}", field=field)


def _check_rate_limit(db: Session, settings: Settings, *, username: str, client_ip: str) -> None:
    since = utcnow() - timedelta(seconds=settings.login_window_seconds)
    for column, value, limit in (
        (LoginAttempt.username, username, settings.login_max_failures),
        (LoginAttempt.client_ip, client_ip, settings.login_max_failures_per_ip),
    ):
        row = db.execute(
            select(func.count(), func.min(LoginAttempt.attempted_at)).where(
                column == value,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.attempted_at > since,
            )
        ).one()
        failures, oldest = row
        if failures >= limit:
            retry_after = _seconds_until(oldest + timedelta(seconds=settings.login_window_seconds))
            raise RateLimited(
                f"too many failed logins; try again in {math.ceil(retry_after / 60)} minute(s)",
                retry_after=retry_after,
            )


def _seconds_until(moment: datetime) -> int:
    return max(1, math.ceil((moment - utcnow()).total_seconds()))


def start_session(
    db: Session, settings: Settings, user: User, *, client_ip: str, user_agent: str
) -> NewSession:
    token = new_token()
    session = UserSession(
        user_id=user.id,
        token_hash=token_hash(token),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + timedelta(hours=settings.session_hours),
        client_ip=client_ip[:64],
        user_agent=user_agent[:256],
    )
    db.add(session)
    # Old expired sessions are swept whenever someone logs in; nothing else needs them.
    db.execute(delete(UserSession).where(UserSession.expires_at < utcnow()))
    db.commit()
    return NewSession(token=token, session=session)


def resolve_session(db: Session, token: str) -> tuple[UserSession, User] | None:
    """The live session and its active user for a cookie value, or None."""
    row = db.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    session, user = row
    now = utcnow()
    if session.expires_at <= now or not user.is_active:
        return None
    # Touch at most once a minute: a write on every request would serialise SQLite.
    if (now - session.last_seen_at).total_seconds() > 60:
        session.last_seen_at = now
        _touch(db)
    return session, user


def end_session(db: Session, token: str) -> None:
    db.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))
    db.commit()


def create_api_token(db: Session, user: User, data: TokenCreate) -> tuple[ApiToken, str]:
    token = new_token(TOKEN_PREFIX)
    record = ApiToken(
        user_id=user.id,
        name=data.name.strip(),
        token_hash=token_hash(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + timedelta(days=data.expires_in_days)
        if data.expires_in_days
        else None,
    )
    db.add(record)
    db.commit()
    return record, token


def resolve_api_token(db: Session, token: str) -> User | None:
    found = _resolve_api_token(db, token)
    return found[0] if found else None


def _resolve_api_token(db: Session, token: str) -> tuple[User, datetime | None] | None:
    """The token's active user and when the token expires, or None."""
    row = db.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    record, user = row
    now = utcnow()
    if record.revoked_at is not None or not user.is_active:
        return None
    if record.expires_at is not None and record.expires_at <= now:
        return None
    if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
        record.last_used_at = now
        _touch(db)
    return user, record.expires_at


class TokenCache:
    """API tokens this process checked in the last `seconds`, with a copy of their user: a
    labeling client sends its token with every request, and the check is a query each time.
    What a cached answer can miss is bounded by `seconds` (at most 1, see Settings): a token
    revoked, a user deactivated or given another role elsewhere. The process that makes such
    a change forgets every cached token at once (forget_cached_tokens). Refusals are never
    cached."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def cached(self, db: Session, token: str) -> User | None:
        """The token's user when the cache holds it, without a query; else None."""
        entry = self._entries.get(token_hash(token))
        if entry is None or entry[0] <= self._clock():
            return None
        # A copy in this request's session, loaded from the cached one without a query.
        return db.merge(entry[1], load=False)

    def resolve(self, db: Session, token: str, seconds: float) -> User | None:
        if seconds <= 0:
            return resolve_api_token(db, token)
        hit = self.cached(db, token)
        if hit is not None:
            return hit
        key = token_hash(token)
        now = self._clock()
        found = _resolve_api_token(db, token)
        with self._lock:
            if found is None:
                self._entries.pop(key, None)
                return None
            user, expires_at = found
            if expires_at is not None:
                # A token that expires within the window is cached only until it does.
                seconds = min(seconds, (expires_at - utcnow()).total_seconds())
            if len(self._entries) > 10_000:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (now + seconds, _detached_copy(user))
        return user

    def clear(self) -> None:
        with self._lock:
            self._entries = {}


def _detached_copy(user: User) -> User:
    copy = User(**{attr.key: getattr(user, attr.key) for attr in inspect(User).column_attrs})
    make_transient_to_detached(copy)
    return copy


token_cache = TokenCache()


def forget_cached_tokens() -> None:
    """After a token was revoked or a user changed: this process checks every token again."""
    token_cache.clear()


def _touch(db: Session) -> None:
    """Commits a last-seen/last-used time, or drops it: in a read-only request on SQLite
    another writer (an import) may hold the lock, and a timestamp is not worth the wait."""
    try:
        db.commit()
    except OperationalError:
        db.rollback()


def list_api_tokens(db: Session, user: User) -> list[ApiToken]:
    return list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc()))
    )


def revoke_api_token(db: Session, user: User, token_id: int) -> ApiToken:
    record = db.get(ApiToken, token_id)
    # Someone else's token is "not found", not "forbidden": ids reveal nothing.
    if record is None or record.user_id != user.id:
        raise NotFound(f"no token with id {token_id}")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        db.commit()
        forget_cached_tokens()
    return record
