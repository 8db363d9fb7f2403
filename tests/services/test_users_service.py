"""app.services.users: accounts, roles, the last-admin rule and passwords."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound, WrongPassword
from app.models import (
    ApiToken,
    Assignment,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Role,
    Task,
    User,
    UserSession,
)
from app.models.base import utcnow
from app.schemas.users import PasswordChange, TokenCreate, UserCreate, UserUpdate
from app.security import verify_password
from app.services import auth, users
from app.settings import Settings
from tests.conftest import PASSWORD, make_token, make_user

GENERATED = re.compile(r"^[a-z2-9]{5}(-[a-z2-9]{5}){3}$")


def session_count(db: Session, user: User) -> int:
    return int(
        db.scalar(
            select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)
        )
        or 0
    )


def login(db: Session, settings: Settings, user: User) -> str:
    return auth.start_session(db, settings, user, client_ip="10.0.0.1", user_agent="pytest").token


# --- create -----------------------------------------------------------------------------------


def test_create_user_without_password_generates_one_that_must_be_changed(db: Session) -> None:
    user, generated = users.create_user(
        db, UserCreate(username="  Grace ", role=Role.researcher, display_name=" Grace H. ")
    )
    assert generated is not None
    assert GENERATED.match(generated)
    assert user.username == "grace"
    assert user.display_name == "Grace H."
    assert user.role == Role.researcher
    assert user.is_active is True
    assert user.must_change_password is True
    assert verify_password(user.password_hash, generated) is True
    assert user.password_hash != generated


def test_create_user_with_password_returns_no_generated_one(db: Session) -> None:
    user, generated = users.create_user(db, UserCreate(username="alan", password=PASSWORD))
    assert generated is None
    assert user.role == Role.labeler
    assert user.must_change_password is False
    assert verify_password(user.password_hash, PASSWORD) is True


def test_duplicate_username_is_a_conflict_on_the_username_field(db: Session) -> None:
    first = make_user(db, "ada")
    with pytest.raises(Conflict) as caught:
        users.create_user(db, UserCreate(username="ADA", password=PASSWORD))
    assert caught.value.field == "username"
    assert caught.value.message == "the username 'ada' is taken"
    # The failed insert was rolled back; the first account is untouched and still usable.
    assert db.scalars(select(User.id)).all() == [first.id]


def test_get_user_and_get_user_by_username(db: Session, labeler: User) -> None:
    assert users.get_user(db, labeler.id) is labeler
    assert users.get_user_by_username(db, " LENA ") is labeler
    with pytest.raises(NotFound):
        users.get_user(db, 999_999)
    with pytest.raises(NotFound, match="no user named 'nobody'"):
        users.get_user_by_username(db, "Nobody")


def test_list_users_sorted_with_and_without_inactive(db: Session) -> None:
    make_user(db, "zoe")
    make_user(db, "bob", active=False)
    make_user(db, "amy")
    assert [user.username for user in users.list_users(db)] == ["amy", "bob", "zoe"]
    assert [u.username for u in users.list_users(db, include_inactive=False)] == ["amy", "zoe"]


# --- update_user ------------------------------------------------------------------------------


def test_admin_cannot_demote_or_deactivate_themselves(db: Session, admin: User) -> None:
    make_user(db, "second-admin", Role.admin)
    for change in (UserUpdate(role=Role.labeler), UserUpdate(is_active=False)):
        with pytest.raises(InvalidInput, match="cannot demote or deactivate yourself"):
            users.update_user(db, admin.id, change, acting=admin)
    assert admin.role == Role.admin
    assert admin.is_active is True


def test_admin_may_change_their_own_display_name(db: Session, admin: User) -> None:
    updated = users.update_user(
        db, admin.id, UserUpdate(display_name="  Root  ", role=Role.admin), acting=admin
    )
    assert updated.display_name == "Root"
    assert updated.role == Role.admin


def test_another_admin_may_demote_an_admin_while_one_remains(db: Session, admin: User) -> None:
    other = make_user(db, "second-admin", Role.admin)
    updated = users.update_user(db, other.id, UserUpdate(role=Role.researcher), acting=admin)
    assert updated.role == Role.researcher
    assert users.count_active_admins(db) == 1


@pytest.mark.parametrize(
    "change", [UserUpdate(role=Role.labeler), UserUpdate(is_active=False)], ids=["demote", "off"]
)
def test_cli_keeps_the_last_admin_rule(db: Session, admin: User, change: UserUpdate) -> None:
    with pytest.raises(InvalidInput, match="last active admin"):
        users.update_user(db, admin.id, change, acting=None)
    assert (admin.role, admin.is_active) == (Role.admin, True)


def test_an_inactive_admin_does_not_count_as_another_admin(db: Session, admin: User) -> None:
    make_user(db, "dormant-admin", Role.admin, active=False)
    assert users.count_active_admins(db) == 1
    with pytest.raises(InvalidInput, match="last active admin"):
        users.update_user(db, admin.id, UserUpdate(role=Role.labeler), acting=None)


def test_cli_may_demote_an_admin_when_another_is_active(db: Session, admin: User) -> None:
    make_user(db, "second-admin", Role.admin)
    updated = users.update_user(db, admin.id, UserUpdate(role=Role.labeler), acting=None)
    assert updated.role == Role.labeler
    assert users.count_active_admins(db) == 1


def test_deactivation_ends_sessions_and_reactivation_clears_the_date(
    db: Session, settings: Settings, admin: User, labeler: User
) -> None:
    token = login(db, settings, labeler)
    login(db, settings, labeler)
    admin_token = login(db, settings, admin)
    assert session_count(db, labeler) == 2

    users.update_user(db, labeler.id, UserUpdate(is_active=False), acting=admin)
    assert labeler.is_active is False
    assert labeler.deactivated_at is not None
    assert abs(labeler.deactivated_at - utcnow()) < timedelta(minutes=1)
    assert session_count(db, labeler) == 0
    assert auth.resolve_session(db, token) is None
    # Only that user's sessions end.
    assert session_count(db, admin) == 1
    assert auth.resolve_session(db, admin_token) is not None

    users.update_user(db, labeler.id, UserUpdate(is_active=True), acting=admin)
    assert labeler.is_active is True
    assert labeler.deactivated_at is None


def test_deactivation_revokes_api_tokens_for_good(db: Session, admin: User, labeler: User) -> None:
    _, kept = auth.create_api_token(db, admin, TokenCreate(name="admin's"))
    first, _ = auth.create_api_token(db, labeler, TokenCreate(name="one"))
    _, second = auth.create_api_token(db, labeler, TokenCreate(name="two"))

    users.update_user(db, labeler.id, UserUpdate(is_active=False), acting=admin)
    users.update_user(db, labeler.id, UserUpdate(is_active=True), acting=admin)

    db.refresh(first)
    assert first.revoked_at is not None
    assert auth.resolve_api_token(db, second) is None
    assert auth.resolve_api_token(db, kept) is not None


def test_update_unknown_user_is_not_found(db: Session, admin: User) -> None:
    with pytest.raises(NotFound, match="no user with id 999999"):
        users.update_user(db, 999_999, UserUpdate(display_name="x"), acting=admin)


# --- passwords --------------------------------------------------------------------------------


def test_reset_password_ends_sessions_and_returns_a_working_temporary_password(
    db: Session, settings: Settings, labeler: User
) -> None:
    token = login(db, settings, labeler)
    user, temporary = users.reset_password(db, labeler.id)
    assert user is labeler
    assert GENERATED.match(temporary)
    assert user.must_change_password is True
    assert session_count(db, labeler) == 0
    assert auth.resolve_session(db, token) is None
    assert verify_password(user.password_hash, PASSWORD) is False
    logged_in = auth.authenticate(
        db, settings, username="lena", password=temporary, client_ip="10.0.0.1"
    )
    assert logged_in is labeler


def test_change_password_with_wrong_current_password_fails(
    db: Session, settings: Settings, labeler: User
) -> None:
    change = PasswordChange(current_password="not my password", new_password="a brand new one")
    with pytest.raises(WrongPassword) as caught:
        users.change_password(db, settings, labeler, change, client_ip="10.0.0.9")
    assert caught.value.field == "current_password"
    assert verify_password(labeler.password_hash, PASSWORD) is True


def test_change_password_to_the_same_password_is_invalid(
    db: Session, settings: Settings, labeler: User
) -> None:
    with pytest.raises(InvalidInput) as caught:
        users.change_password(
            db,
            settings,
            labeler,
            PasswordChange(current_password=PASSWORD, new_password=PASSWORD),
            client_ip="10.0.0.9",
        )
    assert caught.value.field == "new_password"


def test_change_password_replaces_the_hash_and_clears_the_flag(
    db: Session, settings: Settings
) -> None:
    user, generated = users.create_user(db, UserCreate(username="newbie"))
    assert generated is not None
    users.change_password(
        db,
        settings,
        user,
        PasswordChange(current_password=generated, new_password="a brand new one"),
        client_ip="10.0.0.9",
    )
    assert user.must_change_password is False
    assert verify_password(user.password_hash, "a brand new one") is True
    assert verify_password(user.password_hash, generated) is False


# --- delete_user ------------------------------------------------------------------------------


def test_delete_user_without_labeled_work_removes_them_with_sessions_and_tokens(
    db: Session, settings: Settings, admin: User, labeler: User
) -> None:
    login(db, settings, labeler)
    make_token(db, labeler)
    users.delete_user(db, labeler.id, acting=admin)
    db.expire_all()
    assert db.get(User, labeler.id) is None
    assert db.scalar(select(func.count()).select_from(UserSession)) == 0
    assert db.scalar(select(func.count()).select_from(ApiToken)) == 0


def test_delete_user_with_labeled_work_is_a_conflict(
    db: Session, admin: User, labeler: User
) -> None:
    project = Project(name="work", label_schema={"flags": []})
    db.add(project)
    db.flush()
    prompt = Prompt(project_id=project.id, messages=[], source="test", content_hash="0" * 64)
    queue = Queue(project_id=project.id, name="q", kind=QueueKind.demonstration)
    db.add_all([prompt, queue])
    db.flush()
    task = Task(queue_id=queue.id, prompt_id=prompt.id)
    db.add(task)
    db.flush()
    now = utcnow()
    db.add(
        Assignment(
            task_id=task.id,
            labeler_id=labeler.id,
            leased_at=now,
            lease_expires_at=now + timedelta(hours=1),
        )
    )
    db.commit()
    with pytest.raises(Conflict, match="'lena' has labeled work; deactivate the account instead"):
        users.delete_user(db, labeler.id, acting=admin)
    assert db.get(User, labeler.id) is labeler


def test_delete_user_referenced_elsewhere_is_a_conflict(
    db: Session, admin: User, researcher: User
) -> None:
    db.add(Project(name="theirs", label_schema={"flags": []}, created_by_id=researcher.id))
    db.commit()
    with pytest.raises(Conflict, match="'rhea' is referenced by other records"):
        users.delete_user(db, researcher.id, acting=admin)
    assert users.get_user(db, researcher.id).username == "rhea"


def test_delete_user_refuses_self_and_the_last_admin(
    db: Session, admin: User, labeler: User
) -> None:
    with pytest.raises(InvalidInput, match="cannot delete yourself"):
        users.delete_user(db, admin.id, acting=admin)
    with pytest.raises(InvalidInput, match="last active admin"):
        users.delete_user(db, admin.id, acting=labeler)
    assert db.get(User, admin.id) is admin


# --- ensure_first_admin -----------------------------------------------------------------------


def test_ensure_first_admin_on_an_empty_users_table(db: Session) -> None:
    # Explicitly empty, whatever else this transaction may have created.
    db.execute(delete(User))
    assert db.scalar(select(func.count()).select_from(User)) == 0

    created = users.ensure_first_admin(db, "boss")
    assert created is not None
    user, password = created
    assert (user.username, user.role, user.is_active) == ("boss", Role.admin, True)
    assert user.must_change_password is True
    assert GENERATED.match(password)
    assert verify_password(user.password_hash, password) is True

    assert users.ensure_first_admin(db, "boss2") is None
    assert db.scalars(select(User.username)).all() == ["boss"]


def test_ensure_first_admin_does_nothing_when_any_user_exists(db: Session, labeler: User) -> None:
    assert users.ensure_first_admin(db) is None
    assert db.scalars(select(User.username)).all() == ["lena"]
    assert users.count_active_admins(db) == 0


def test_reset_password_revokes_the_users_api_tokens(db: Session) -> None:
    user = make_user(db, "tokened")
    other = make_user(db, "bystander")
    token = make_token(db, user)
    other_token = make_token(db, other)
    users.reset_password(db, user.id)
    assert auth.resolve_api_token(db, token) is None
    assert auth.resolve_api_token(db, other_token) == other
