"""Users: create, change role, deactivate, reset and change passwords."""

from __future__ import annotations

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    ApiToken,
    Assignment,
    Comparison,
    Demonstration,
    Role,
    User,
    UserSession,
)
from app.models.base import utcnow
from app.schemas.users import PasswordChange, UserCreate, UserUpdate
from app.security import generate_password, hash_password
from app.services import auth
from app.settings import Settings


def list_users(db: Session, *, include_inactive: bool = True) -> list[User]:
    query = select(User).order_by(User.username)
    if not include_inactive:
        query = query.where(User.is_active.is_(True))
    return list(db.scalars(query))


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def get_user_by_username(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFound(f"no user named {username.strip().lower()!r}")
    return user


def create_user(db: Session, data: UserCreate) -> tuple[User, str | None]:
    """Returns the user and, when no password was given, the generated one (shown once)."""
    generated = None if data.password else generate_password()
    user = User(
        username=data.username,
        display_name=data.display_name.strip(),
        role=data.role,
        password_hash=hash_password(data.password or generated or ""),
        # Somebody else chose or saw this password: the owner must replace it.
        must_change_password=generated is not None,
    )
    db.add(user)
    try:
        db.commit()
    except IntegrityError as error:
        db.rollback()
        if _username_taken(db, data.username):
            raise Conflict(f"the username {data.username!r} is taken", field="username") from error
        raise
    return user, generated


def _username_taken(db: Session, username: str) -> bool:
    return bool(db.scalar(select(exists().where(User.username == username))))


def update_user(db: Session, user_id: int, data: UserUpdate, *, acting: User | None) -> User:
    """`acting` is the admin making the change, or None for the machine's operator (CLI)."""
    user = get_user(db, user_id)
    if (
        acting is not None
        and user.id == acting.id
        and ((data.role is not None and data.role != Role.admin) or data.is_active is False)
    ):
        raise InvalidInput("you cannot demote or deactivate yourself; ask another admin")
    if (data.role not in (None, Role.admin) or data.is_active is False) and _is_last_admin(
        db, user
    ):
        raise InvalidInput("this is the last active admin; make another admin first")
    if data.role is not None:
        user.role = data.role
    if data.display_name is not None:
        user.display_name = data.display_name.strip()
    if data.is_active is not None and data.is_active != user.is_active:
        user.is_active = data.is_active
        user.deactivated_at = None if data.is_active else utcnow()
        if not data.is_active:
            # For good: reactivating someone gives them their account back, not credentials
            # that were out of their hands (and ours) while they were away.
            _end_all_sessions(db, user.id)
            _revoke_all_tokens(db, user.id)
    db.commit()
    auth.forget_cached_tokens()
    return user


def _is_last_admin(db: Session, user: User) -> bool:
    if user.role != Role.admin or not user.is_active:
        return False
    others = db.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin, User.is_active.is_(True), User.id != user.id)
    )
    return others == 0


def reset_password(db: Session, user_id: int) -> tuple[User, str]:
    """Gives the user a generated temporary password, logs them out everywhere and revokes
    their API tokens: a reset usually means the old credentials can no longer be trusted."""
    user = get_user(db, user_id)
    temporary = generate_password()
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    _end_all_sessions(db, user.id)
    _revoke_all_tokens(db, user.id)
    db.commit()
    auth.forget_cached_tokens()
    return user, temporary


def _revoke_all_tokens(db: Session, user_id: int) -> None:
    db.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def change_password(
    db: Session,
    settings: Settings,
    user: User,
    data: PasswordChange,
    *,
    client_ip: str,
    keep_session_id: int | None = None,
) -> None:
    """Sets a new password and ends every other login of the user (all but `keep_session_id`)."""
    auth.check_current_password(db, settings, user, data.current_password, client_ip=client_ip)
    if data.new_password == data.current_password:
        raise InvalidInput(
            "the new password must differ from the current one", field="new_password"
        )
    user.password_hash = hash_password(data.new_password)
    user.must_change_password = False
    # Whoever may have learned the old password loses their session with it.
    db.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id, UserSession.id != (keep_session_id or -1)
        )
    )
    db.commit()


def delete_user(db: Session, user_id: int, *, acting: User) -> None:
    """Only for accounts that never labeled: labels are never lost, so those are deactivated."""
    user = get_user(db, user_id)
    if user.id == acting.id:
        raise InvalidInput("you cannot delete yourself")
    if _is_last_admin(db, user):
        raise InvalidInput("this is the last active admin; make another admin first")
    has_work = db.scalar(
        select(
            or_(
                exists().where(Assignment.labeler_id == user.id),
                exists().where(Comparison.labeler_id == user.id),
                exists().where(Demonstration.labeler_id == user.id),
            )
        )
    )
    if has_work:
        raise Conflict(f"{user.username!r} has labeled work; deactivate the account instead")
    db.delete(user)
    try:
        db.commit()
    except IntegrityError as error:
        db.rollback()
        raise Conflict(
            f"{user.username!r} is referenced by other records; deactivate the account instead"
        ) from error
    auth.forget_cached_tokens()


def _end_all_sessions(db: Session, user_id: int) -> None:
    # API tokens need no revoking here: every token check also requires an active user.
    db.execute(delete(UserSession).where(UserSession.user_id == user_id))


def count_active_admins(db: Session) -> int:
    return int(
        db.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.admin, User.is_active.is_(True))
        )
        or 0
    )


def ensure_first_admin(db: Session, username: str = "admin") -> tuple[User, str] | None:
    """On an empty database, create an admin with a generated password and return it once."""
    if db.scalar(select(exists().select_from(User))):
        return None
    user, generated = create_user(db, UserCreate(username=username, role=Role.admin))
    assert generated is not None
    return user, generated
