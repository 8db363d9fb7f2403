"""/api/v1/users: admin user management, with every refusal leaving the database unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    ApiToken,
    Assignment,
    Comparison,
    Demonstration,
    LabelSource,
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
from app.schemas.users import UserUpdate
from app.security import verify_password
from app.services import auth, users
from app.settings import Settings
from tests.api.helpers import (
    API,
    GENERATED_PASSWORD,
    count,
    db_state,
    error,
    iso,
    reload,
    user_json,
    validation_error,
)
from tests.conftest import PASSWORD, bearer, make_token, make_user

USERNAME_RULE = (
    "Value error, a username is 2-64 characters: letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)
SELF_DEMOTION = "you cannot demote or deactivate yourself; ask another admin"
LAST_ADMIN = "this is the last active admin; make another admin first"


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


def login_status(client: TestClient, username: str, password: str) -> int:
    response = client.post(f"{API}/auth/token", json={"username": username, "password": password})
    return response.status_code


# --- list and get ---------------------------------------------------------------------------


def test_list_returns_every_user_by_username_inactive_included(
    client: TestClient,
    db: Session,
    admin: User,
    labeler: User,
    researcher: User,
    as_admin: dict[str, str],
) -> None:
    gone = make_user(db, "gone", active=False)

    response = client.get(f"{API}/users", headers=as_admin)

    assert response.status_code == 200
    assert response.json() == [user_json(user) for user in (gone, labeler, researcher, admin)]
    assert [entry["username"] for entry in response.json()] == [
        "gone",
        "lena",
        "rhea",
        "root-admin",
    ]
    assert response.json()[0]["is_active"] is False


def test_get_returns_one_user(client: TestClient, labeler: User, as_admin: dict[str, str]) -> None:
    response = client.get(f"{API}/users/{labeler.id}", headers=as_admin)

    assert response.status_code == 200
    assert response.json() == {
        "id": labeler.id,
        "username": "lena",
        "display_name": "",
        "role": "labeler",
        "is_active": True,
        "must_change_password": False,
        "created_at": iso(labeler.created_at),
    }


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_user_id_is_404(
    client: TestClient, db: Session, as_admin: dict[str, str], method: str
) -> None:
    before = db_state(db)

    response = client.request(
        method,
        f"{API}/users/999999",
        headers=as_admin,
        json={"display_name": "x"} if method == "PATCH" else None,
    )

    assert response.status_code == 404
    assert response.json() == error("not_found", "no user with id 999999")
    assert db_state(db) == before


def test_reset_password_of_unknown_user_is_404(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    before = db_state(db)

    response = client.post(f"{API}/users/999999/reset-password", headers=as_admin)

    assert response.status_code == 404
    assert response.json() == error("not_found", "no user with id 999999")
    assert db_state(db) == before


def test_non_integer_user_id_is_422(client: TestClient, as_admin: dict[str, str]) -> None:
    response = client.get(f"{API}/users/lena", headers=as_admin)

    assert response.status_code == 422
    body = response.json()["error"]
    assert (body["code"], body["field"]) == ("invalid_request", "user_id")
    assert [problem["location"] for problem in body["problems"]] == ["path.user_id"]


# --- create ---------------------------------------------------------------------------------


def test_create_with_password_stores_the_user_and_returns_no_password(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/users",
        headers=as_admin,
        json={
            "username": "  New.User_1 ",
            "role": "researcher",
            "display_name": "  Nina Researcher  ",
            "password": "exactly10!",
        },
    )

    assert response.status_code == 201
    created = db.scalars(select(User).where(User.username == "new.user_1")).one()
    assert response.json() == {
        "user": {
            "id": created.id,
            "username": "new.user_1",
            "display_name": "Nina Researcher",
            "role": "researcher",
            "is_active": True,
            "must_change_password": False,
            "created_at": iso(created.created_at),
        },
        "generated_password": None,
    }
    assert created.deactivated_at is None
    assert created.password_hash != "exactly10!"
    assert verify_password(created.password_hash, "exactly10!")
    assert login_status(client, "new.user_1", "exactly10!") == 201


@pytest.mark.parametrize("body", [{"username": "nopass"}, {"username": "nopass", "password": None}])
def test_create_without_password_generates_one_that_must_be_changed(
    client: TestClient, db: Session, as_admin: dict[str, str], body: dict[str, object]
) -> None:
    response = client.post(f"{API}/users", headers=as_admin, json=body)

    assert response.status_code == 201
    created = db.scalars(select(User).where(User.username == "nopass")).one()
    generated = response.json()["generated_password"]
    assert isinstance(generated, str)
    assert GENERATED_PASSWORD.match(generated)
    assert response.json() == {
        "user": {
            "id": created.id,
            "username": "nopass",
            "display_name": "",
            "role": "labeler",
            "is_active": True,
            "must_change_password": True,
            "created_at": iso(created.created_at),
        },
        "generated_password": generated,
    }
    assert verify_password(created.password_hash, generated)
    # The generated password is right, but an API token needs a password of one's own.
    assert login_status(client, "nopass", generated) == 403


def test_two_generated_passwords_differ(client: TestClient, as_admin: dict[str, str]) -> None:
    first = client.post(f"{API}/users", headers=as_admin, json={"username": "one"})
    second = client.post(f"{API}/users", headers=as_admin, json={"username": "two"})

    assert first.json()["generated_password"] != second.json()["generated_password"]


@pytest.mark.parametrize("username", ["lena", "LENA", "  Lena  "])
def test_duplicate_username_is_409_whatever_the_case(
    client: TestClient, db: Session, labeler: User, as_admin: dict[str, str], username: str
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": username, "password": PASSWORD}
    )

    assert response.status_code == 409
    assert response.json() == error("conflict", "the username 'lena' is taken", "username")
    assert db_state(db) == before


@pytest.mark.parametrize(
    "username",
    ["a", "-lena", ".lena", "_lena", "le na", "lena!", "émile", "x" * 65, "", "   "],
)
def test_invalid_username_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], username: str
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": username, "password": PASSWORD}
    )

    assert response.status_code == 422
    assert response.json() == validation_error(USERNAME_RULE, "username")
    assert db_state(db) == before


@pytest.mark.parametrize("username", ["ab", "x" * 64, "0-start", "a.b_c-d"])
def test_username_limits_are_accepted(
    client: TestClient, as_admin: dict[str, str], username: str
) -> None:
    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": username, "password": PASSWORD}
    )

    assert response.status_code == 201
    assert response.json()["user"]["username"] == username


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "Value error, a password needs at least 10 characters"),
        ("123456789", "Value error, a password needs at least 10 characters"),
        ("x" * 257, "Value error, a password has at most 256 characters"),
    ],
)
def test_bad_password_length_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], password: str, message: str
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": "newbie", "password": password}
    )

    assert response.status_code == 422
    assert response.json() == validation_error(message, "password")
    assert db_state(db) == before


@pytest.mark.parametrize("extra", ["is_active", "password_hash", "must_change_password", "id"])
def test_create_with_unknown_field_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], extra: str
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": "newbie", extra: False}
    )

    assert response.status_code == 422
    assert response.json() == validation_error("Extra inputs are not permitted", extra)
    assert db_state(db) == before


def test_create_with_unknown_role_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/users", headers=as_admin, json={"username": "newbie", "role": "superuser"}
    )

    assert response.status_code == 422
    body = response.json()["error"]
    assert (body["code"], body["field"]) == ("invalid_request", "role")
    assert [problem["type"] for problem in body["problems"]] == ["enum"]
    assert db_state(db) == before


def test_create_without_username_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    before = db_state(db)

    response = client.post(f"{API}/users", headers=as_admin, json={"role": "labeler"})

    assert response.status_code == 422
    assert response.json() == validation_error("Field required", "username")
    assert db_state(db) == before


# --- update ---------------------------------------------------------------------------------


def test_patch_changes_role_and_display_name(
    client: TestClient, db: Session, labeler: User, as_admin: dict[str, str]
) -> None:
    response = client.patch(
        f"{API}/users/{labeler.id}",
        headers=as_admin,
        json={"role": "researcher", "display_name": "  Lena L.  "},
    )

    assert response.status_code == 200
    stored = reload(db, labeler)
    assert (stored.role, stored.display_name, stored.is_active) == (
        Role.researcher,
        "Lena L.",
        True,
    )
    assert response.json() == user_json(stored)


def test_empty_patch_changes_nothing(
    client: TestClient, db: Session, labeler: User, as_admin: dict[str, str]
) -> None:
    before = db_state(db)

    response = client.patch(f"{API}/users/{labeler.id}", headers=as_admin, json={})

    assert response.status_code == 200
    assert response.json() == user_json(labeler)
    assert db_state(db) == before


def test_deactivate_ends_sessions_and_reactivate_restores(
    client: TestClient, db: Session, settings: Settings, labeler: User, as_admin: dict[str, str]
) -> None:
    auth.start_session(db, settings, labeler, client_ip="10.0.0.1", user_agent="pytest")
    assert count(db, UserSession, UserSession.user_id == labeler.id) == 1

    response = client.patch(
        f"{API}/users/{labeler.id}", headers=as_admin, json={"is_active": False}
    )

    assert response.status_code == 200
    stored = reload(db, labeler)
    assert response.json() == {**user_json(stored), "is_active": False}
    assert stored.is_active is False
    assert stored.deactivated_at is not None
    assert abs(stored.deactivated_at - utcnow()) < timedelta(minutes=1)
    assert count(db, UserSession, UserSession.user_id == labeler.id) == 0
    assert login_status(client, "lena", PASSWORD) == 401

    response = client.patch(f"{API}/users/{labeler.id}", headers=as_admin, json={"is_active": True})

    assert response.status_code == 200
    stored = reload(db, labeler)
    assert (stored.is_active, stored.deactivated_at) == (True, None)
    assert response.json() == user_json(stored)
    assert login_status(client, "lena", PASSWORD) == 201


@pytest.mark.parametrize(
    ("body", "unknown"),
    [
        ({"username": "renamed"}, "username"),
        ({"password": "another password"}, "password"),
        ({"must_change_password": True}, "must_change_password"),
        ({"role": "researcher", "deactivated_at": None}, "deactivated_at"),
    ],
)
def test_patch_with_unknown_field_is_422(
    client: TestClient,
    db: Session,
    labeler: User,
    as_admin: dict[str, str],
    body: dict[str, object],
    unknown: str,
) -> None:
    before = db_state(db)

    response = client.patch(f"{API}/users/{labeler.id}", headers=as_admin, json=body)

    assert response.status_code == 422
    assert response.json() == validation_error("Extra inputs are not permitted", unknown)
    assert db_state(db) == before


@pytest.mark.parametrize(
    "body",
    [
        {"role": "labeler"},
        {"role": "researcher"},
        {"is_active": False},
        {"role": "labeler", "is_active": True},
    ],
)
def test_admin_cannot_demote_or_deactivate_themselves(
    client: TestClient,
    db: Session,
    admin: User,
    as_admin: dict[str, str],
    body: dict[str, object],
) -> None:
    make_user(db, "second-admin", Role.admin)  # not the last admin: the rule is about oneself
    before = db_state(db)

    response = client.patch(f"{API}/users/{admin.id}", headers=as_admin, json=body)

    assert response.status_code == 422
    assert response.json() == error("invalid_input", SELF_DEMOTION)
    assert db_state(db) == before
    assert reload(db, admin).role == Role.admin


def test_admin_may_edit_themselves_without_demotion(
    client: TestClient, db: Session, admin: User, as_admin: dict[str, str]
) -> None:
    response = client.patch(
        f"{API}/users/{admin.id}",
        headers=as_admin,
        json={"role": "admin", "is_active": True, "display_name": "Root"},
    )

    assert response.status_code == 200
    assert response.json() == user_json(reload(db, admin))
    assert response.json()["display_name"] == "Root"


def test_admin_can_demote_another_admin_but_then_not_themselves(
    client: TestClient, db: Session, admin: User, as_admin: dict[str, str]
) -> None:
    other = make_user(db, "second-admin", Role.admin)

    response = client.patch(f"{API}/users/{other.id}", headers=as_admin, json={"role": "labeler"})

    assert response.status_code == 200
    assert reload(db, other).role == Role.labeler
    assert users.count_active_admins(db) == 1

    before = db_state(db)
    response = client.patch(f"{API}/users/{admin.id}", headers=as_admin, json={"role": "labeler"})

    assert response.status_code == 422
    assert response.json() == error("invalid_input", SELF_DEMOTION)
    assert db_state(db) == before


@pytest.mark.parametrize("change", [UserUpdate(role=Role.labeler), UserUpdate(is_active=False)])
def test_last_active_admin_cannot_be_demoted(db: Session, admin: User, change: UserUpdate) -> None:
    """Through the API the acting admin is always another active admin (or the same one,
    refused above), so the last-admin rule guards the operator's CLI path (acting=None)."""
    make_user(db, "old-admin", Role.admin, active=False)  # inactive admins do not count
    before = db_state(db)

    with pytest.raises(InvalidInput, match=LAST_ADMIN):
        users.update_user(db, admin.id, change, acting=None)

    assert db_state(db) == before


def test_any_admin_but_the_last_can_be_demoted_by_the_operator(db: Session, admin: User) -> None:
    other = make_user(db, "second-admin", Role.admin)

    users.update_user(db, other.id, UserUpdate(role=Role.researcher), acting=None)

    assert reload(db, other).role == Role.researcher
    with pytest.raises(InvalidInput, match=LAST_ADMIN):
        users.update_user(db, admin.id, UserUpdate(role=Role.researcher), acting=None)


# --- reset password -------------------------------------------------------------------------


def test_reset_password_gives_a_temporary_one_and_ends_sessions(
    client: TestClient, db: Session, settings: Settings, labeler: User, as_admin: dict[str, str]
) -> None:
    auth.start_session(db, settings, labeler, client_ip="10.0.0.1", user_agent="pytest")

    response = client.post(f"{API}/users/{labeler.id}/reset-password", headers=as_admin)

    assert response.status_code == 200
    temporary = response.json()["temporary_password"]
    assert GENERATED_PASSWORD.match(temporary)
    stored = reload(db, labeler)
    assert stored.must_change_password is True
    assert response.json() == {"user": user_json(stored), "temporary_password": temporary}
    assert verify_password(stored.password_hash, temporary)
    assert not verify_password(stored.password_hash, PASSWORD)
    assert count(db, UserSession, UserSession.user_id == labeler.id) == 0
    assert login_status(client, "lena", PASSWORD) == 401
    assert login_status(client, "lena", temporary) == 403


# --- delete ---------------------------------------------------------------------------------


def test_delete_removes_a_user_without_work_and_their_tokens(
    client: TestClient, db: Session, labeler: User, as_admin: dict[str, str]
) -> None:
    make_token(db, labeler)
    labeler_id = labeler.id

    response = client.delete(f"{API}/users/{labeler_id}", headers=as_admin)

    assert response.status_code == 204
    assert response.content == b""
    assert count(db, User, User.id == labeler_id) == 0
    assert count(db, ApiToken, ApiToken.user_id == labeler_id) == 0
    assert client.get(f"{API}/users/{labeler_id}", headers=as_admin).status_code == 404


def give_work(db: Session, user: User, kind: str) -> None:
    """One row that says `user` labeled something: an assignment, comparison or demonstration."""
    project = Project(name=f"work for {user.username}", label_schema={"flags": []})
    db.add(project)
    db.flush()
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Say hello"}],
        source="test",
        content_hash="0" * 64,
    )
    db.add(prompt)
    db.flush()
    if kind == "assignment":
        queue = Queue(project_id=project.id, name="main", kind=QueueKind.comparison)
        db.add(queue)
        db.flush()
        task = Task(queue_id=queue.id, prompt_id=prompt.id)
        db.add(task)
        db.flush()
        db.add(
            Assignment(
                task_id=task.id,
                labeler_id=user.id,
                lease_expires_at=utcnow() + timedelta(minutes=30),
            )
        )
    elif kind == "comparison":
        db.add(Comparison(prompt_id=prompt.id, labeler_id=user.id, source=LabelSource.labeler))
    elif kind == "demonstration":
        db.add(
            Demonstration(
                prompt_id=prompt.id,
                labeler_id=user.id,
                source=LabelSource.labeler,
                messages=[{"role": "assistant", "content": "Hello!"}],
            )
        )
    else:
        raise AssertionError(kind)
    db.commit()


@pytest.mark.parametrize("kind", ["assignment", "comparison", "demonstration"])
def test_delete_of_user_with_labeled_work_is_409(
    client: TestClient, db: Session, labeler: User, as_admin: dict[str, str], kind: str
) -> None:
    make_token(db, labeler)
    give_work(db, labeler, kind)
    before = db_state(db)

    response = client.delete(f"{API}/users/{labeler.id}", headers=as_admin)

    assert response.status_code == 409
    assert response.json() == error(
        "conflict", "'lena' has labeled work; deactivate the account instead"
    )
    assert db_state(db) == before
    assert count(db, Assignment) + count(db, Comparison) + count(db, Demonstration) == 1


def test_delete_of_user_referenced_elsewhere_is_409(
    client: TestClient, db: Session, researcher: User, as_admin: dict[str, str]
) -> None:
    db.add(Project(name="Rhea's", label_schema={"flags": []}, created_by_id=researcher.id))
    db.commit()
    before = db_state(db)

    response = client.delete(f"{API}/users/{researcher.id}", headers=as_admin)

    assert response.status_code == 409
    assert response.json() == error(
        "conflict", "'rhea' is referenced by other records; deactivate the account instead"
    )
    assert db_state(db) == before


def test_admin_cannot_delete_themselves(
    client: TestClient, db: Session, admin: User, as_admin: dict[str, str]
) -> None:
    make_user(db, "second-admin", Role.admin)
    before = db_state(db)

    response = client.delete(f"{API}/users/{admin.id}", headers=as_admin)

    assert response.status_code == 422
    assert response.json() == error("invalid_input", "you cannot delete yourself")
    assert db_state(db) == before


def test_admin_can_delete_another_admin(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    other = make_user(db, "second-admin", Role.admin)
    other_id = other.id

    response = client.delete(f"{API}/users/{other_id}", headers=as_admin)

    assert response.status_code == 204
    assert count(db, User, User.id == other_id) == 0
    assert users.count_active_admins(db) == 1
