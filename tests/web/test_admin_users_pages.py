"""The admin's user pages: create, change role (plain and htmx), (de)activate, reset password."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Role, User, UserSession
from tests.conftest import PASSWORD, csrf_from, make_user, web_login
from tests.web.helpers import snapshot

GENERATED_PASSWORD = re.compile(r"^[a-z2-9]{5}(-[a-z2-9]{5}){3}$")
USERNAME_RULE = (
    "a username is 2-64 characters: letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)

# --- helpers --------------------------------------------------------------------------------


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def notice(page: str) -> str | None:
    found = _texts(r'data-testid="notice">(.*?)</p>', page)
    return found[0] if found else None


def field_errors(page: str) -> list[str]:
    return _texts(r'<p class="field-error"[^>]*>(.*?)</p>', page)


def error_message(page: str) -> str:
    found = _texts(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return found[0]


def one_time_password(page: str) -> str:
    found = _texts(r'data-testid="one-time-password">(.*?)</p>', page)
    assert len(found) == 1, page
    assert GENERATED_PASSWORD.match(found[0]), found[0]
    return found[0]


def create_form(page: str) -> str:
    start = page.index('data-testid="create-user-form"')
    return page[start : page.index("</form>", start)]


def login(client: TestClient, username: str, password: str) -> httpx.Response:
    """One login attempt through the form; returns the raw response."""
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )


def session_count(db: Session, user: User) -> int:
    count = db.scalar(
        select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)
    )
    return count or 0


def reload_user(db: Session, username: str) -> User:
    db.expire_all()
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    """A second browser, for the user the admin is managing."""
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as other:
        yield other


@pytest.fixture
def admin_csrf(client: TestClient, admin: User) -> str:
    return web_login(client, admin.username)


# --- creating users -------------------------------------------------------------------------


def test_create_user_with_password_redirects_and_shows_the_notice_once(
    client: TestClient, other_client: TestClient, db: Session, admin_csrf: str
) -> None:
    response = client.post(
        "/admin/users",
        data={
            "username": "  Newbie ",
            "display_name": " New Bie ",
            "role": "labeler",
            "password": PASSWORD,
            "csrf_token": admin_csrf,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"

    page = client.get("/admin/users")
    assert page.status_code == 200
    assert notice(page.text) == "Created newbie."
    assert 'data-testid="user-row-newbie"' in page.text
    again = client.get("/admin/users")
    assert notice(again.text) is None

    created = reload_user(db, "newbie")
    assert (created.display_name, created.role, created.is_active) == (
        "New Bie",
        Role.labeler,
        True,
    )
    assert created.must_change_password is False
    # The password the admin chose works and is not forced to change.
    logged_in = login(other_client, "newbie", PASSWORD)
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/"


def test_create_user_without_password_shows_a_one_time_password(
    client: TestClient, other_client: TestClient, db: Session, admin_csrf: str
) -> None:
    response = client.post(
        "/admin/users",
        data={"username": "ria", "role": "researcher", "password": "", "csrf_token": admin_csrf},
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    assert "<h1>Created ria</h1>" in response.text
    password = one_time_password(response.text)

    created = reload_user(db, "ria")
    assert created.role == Role.researcher
    assert created.must_change_password is True
    # Shown once: the users list never shows it again.
    assert password not in client.get("/admin/users").text

    logged_in = login(other_client, "ria", password)
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/account/password"
    home = other_client.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/account/password"
    form = other_client.get("/account/password")
    assert form.status_code == 200
    assert 'data-testid="must-change"' in form.text


def test_duplicate_username_is_409_with_the_error_and_the_values_kept(
    client: TestClient, db: Session, admin_csrf: str, labeler: User
) -> None:
    before = snapshot(db)
    response = client.post(
        "/admin/users",
        data={
            "username": "Lena",
            "display_name": "Lena Two",
            "role": "researcher",
            "password": PASSWORD,
            "csrf_token": admin_csrf,
        },
    )
    assert response.status_code == 409
    assert field_errors(response.text) == ["the username 'lena' is taken"]
    form = create_form(response.text)
    assert 'name="username" type="text" value="Lena"' in form
    assert 'name="display_name" type="text" value="Lena Two"' in form
    assert '<option value="researcher" selected>' in form
    assert '<option value="labeler" selected>' not in form
    # The password is never echoed back into the page.
    assert PASSWORD not in response.text
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("fields", "field_error"),
    [
        ({"username": "x"}, USERNAME_RULE),
        ({"username": "bad name!"}, USERNAME_RULE),
        ({"username": "_underscore"}, USERNAME_RULE),
        ({"password": "too-short"}, "a password needs at least 10 characters"),
        ({"role": "superuser"}, "Input should be 'labeler', 'admin' or 'researcher'"),
    ],
    ids=["too-short-username", "space-in-username", "leading-underscore", "short-password", "role"],
)
def test_invalid_new_user_is_422_and_creates_nothing(
    client: TestClient,
    db: Session,
    admin_csrf: str,
    fields: dict[str, str],
    field_error: str,
) -> None:
    data = {"username": "valid-name", "role": "labeler", "password": PASSWORD, **fields}
    before = snapshot(db)
    response = client.post("/admin/users", data={**data, "csrf_token": admin_csrf})
    assert response.status_code == 422
    assert field_errors(response.text) == [field_error]
    form = create_form(response.text)
    assert f'name="username" type="text" value="{html.escape(data["username"])}"' in form
    assert snapshot(db) == before


# --- changing roles -------------------------------------------------------------------------


def test_change_role_by_plain_post_redirects_with_a_notice(
    client: TestClient, db: Session, admin_csrf: str, labeler: User
) -> None:
    response = client.post(
        f"/admin/users/{labeler.id}/role", data={"role": "researcher", "csrf_token": admin_csrf}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"
    assert reload_user(db, "lena").role == Role.researcher

    page = client.get("/admin/users")
    assert notice(page.text) == "lena is now researcher."
    row = page.text[page.text.index('data-testid="user-row-lena"') :]
    row = row[: row.index("</tr>")]
    assert '<option value="researcher" selected>researcher</option>' in row


def test_change_role_by_htmx_returns_only_the_row(
    client: TestClient, db: Session, admin_csrf: str, labeler: User
) -> None:
    response = client.post(
        f"/admin/users/{labeler.id}/role",
        data={"role": "admin", "csrf_token": admin_csrf},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    fragment = response.text.strip()
    assert fragment.startswith(f'<tr id="user-{labeler.id}" data-testid="user-row-lena">')
    assert fragment.endswith("</tr>")
    assert fragment.count("<tr") == 1
    assert "<html" not in fragment
    assert "<table" not in fragment
    assert '<span class="row-notice" role="status">lena is now admin.</span>' in fragment
    assert '<option value="admin" selected>admin</option>' in fragment
    # The swapped-in row's forms keep working: they carry this session's CSRF token.
    assert f'name="csrf_token" value="{admin_csrf}"' in fragment
    # No one-shot notice is left behind for the next full page.
    assert "smiley_notice" not in response.headers.get("set-cookie", "")
    assert reload_user(db, "lena").role == Role.admin


def test_full_users_page_also_varies_on_hx_request(client: TestClient, admin_csrf: str) -> None:
    response = client.get("/admin/users")
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"


def test_unknown_role_is_422_and_changes_nothing(
    client: TestClient, db: Session, admin_csrf: str, labeler: User
) -> None:
    before = snapshot(db)
    response = client.post(
        f"/admin/users/{labeler.id}/role", data={"role": "superuser", "csrf_token": admin_csrf}
    )
    assert response.status_code == 422
    assert error_message(response.text) == "unknown role 'superuser'"
    assert snapshot(db) == before


def test_unknown_user_id_is_404_on_every_user_action(
    client: TestClient, db: Session, admin_csrf: str
) -> None:
    before = snapshot(db)
    for action, data in (
        ("role", {"role": "researcher"}),
        ("deactivate", {}),
        ("activate", {}),
        ("reset-password", {}),
    ):
        response = client.post(
            f"/admin/users/999999/{action}", data={**data, "csrf_token": admin_csrf}
        )
        assert response.status_code == 404, action
        assert error_message(response.text) == "no user with id 999999"
    assert snapshot(db) == before


# --- deactivating and activating ------------------------------------------------------------


def test_deactivate_ends_the_users_session_at_once_and_activate_restores_login(
    client: TestClient, other_client: TestClient, db: Session, admin_csrf: str, labeler: User
) -> None:
    web_login(other_client, "lena")
    assert other_client.get("/").status_code == 200

    response = client.post(f"/admin/users/{labeler.id}/deactivate", data={"csrf_token": admin_csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"
    assert notice(client.get("/admin/users").text) == "lena is deactivated."

    # The session the user already had stops working on the very next request.
    kicked_out = other_client.get("/")
    assert kicked_out.status_code == 303
    assert kicked_out.headers["location"] == "/login"
    deactivated = reload_user(db, "lena")
    assert deactivated.is_active is False
    assert deactivated.deactivated_at is not None
    assert session_count(db, deactivated) == 0
    refused = login(other_client, "lena", PASSWORD)
    assert refused.status_code == 401
    assert 'data-testid="login-error">this account is deactivated; ask an admin<' in refused.text

    response = client.post(f"/admin/users/{labeler.id}/activate", data={"csrf_token": admin_csrf})
    assert response.status_code == 303
    assert notice(client.get("/admin/users").text) == "lena is active."
    activated = reload_user(db, "lena")
    assert activated.is_active is True
    assert activated.deactivated_at is None
    assert login(other_client, "lena", PASSWORD).status_code == 303
    assert other_client.get("/").status_code == 200


def test_deactivate_and_activate_by_htmx_swap_the_row(
    client: TestClient, admin_csrf: str, labeler: User
) -> None:
    off = client.post(
        f"/admin/users/{labeler.id}/deactivate",
        data={"csrf_token": admin_csrf},
        headers={"HX-Request": "true"},
    )
    assert off.status_code == 200
    assert off.text.strip().startswith(f'<tr id="user-{labeler.id}"')
    assert '<span class="tag off">deactivated</span>' in off.text
    assert f'action="/admin/users/{labeler.id}/activate"' in off.text
    assert "lena is deactivated." in off.text

    on = client.post(
        f"/admin/users/{labeler.id}/activate",
        data={"csrf_token": admin_csrf},
        headers={"HX-Request": "true"},
    )
    assert on.status_code == 200
    assert '<span class="tag ok">active</span>' in on.text
    assert f'action="/admin/users/{labeler.id}/deactivate"' in on.text
    assert "lena is active." in on.text


@pytest.mark.parametrize(
    ("action", "data"),
    [("deactivate", {}), ("role", {"role": "labeler"}), ("role", {"role": "researcher"})],
    ids=["deactivate", "demote-to-labeler", "demote-to-researcher"],
)
def test_admin_cannot_deactivate_or_demote_themselves(
    client: TestClient, db: Session, admin: User, admin_csrf: str, action: str, data: dict[str, str]
) -> None:
    before = snapshot(db)
    response = client.post(
        f"/admin/users/{admin.id}/{action}", data={**data, "csrf_token": admin_csrf}
    )
    assert response.status_code == 422
    assert "<h1>That did not work</h1>" in response.text
    assert error_message(response.text) == (
        "you cannot demote or deactivate yourself; ask another admin"
    )
    assert snapshot(db) == before
    assert client.get("/admin/users").status_code == 200


# --- resetting passwords --------------------------------------------------------------------


def test_reset_password_replaces_the_password_and_ends_the_users_sessions(
    client: TestClient,
    other_client: TestClient,
    db: Session,
    admin: User,
    admin_csrf: str,
    labeler: User,
) -> None:
    web_login(other_client, "lena")

    response = client.post(
        f"/admin/users/{labeler.id}/reset-password", data={"csrf_token": admin_csrf}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "<h1>New password for lena</h1>" in response.text
    temporary = one_time_password(response.text)

    assert other_client.get("/").headers["location"] == "/login"
    assert session_count(db, labeler) == 0
    assert session_count(db, admin) == 1
    assert reload_user(db, "lena").must_change_password is True

    old = login(other_client, "lena", PASSWORD)
    assert old.status_code == 401
    assert 'data-testid="login-error">wrong username or password<' in old.text
    new = login(other_client, "lena", temporary)
    assert new.status_code == 303
    assert new.headers["location"] == "/account/password"


# --- only admins ----------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["lena", "rhea"], ids=["labeler", "researcher"])
def test_non_admins_get_403_on_every_admin_users_route(
    client: TestClient,
    db: Session,
    admin: User,
    labeler: User,
    researcher: User,
    username: str,
) -> None:
    csrf = web_login(client, username)
    target = make_user(db, "target", Role.labeler, active=False)
    before = snapshot(db)
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/admin/users", {}),
        ("POST", "/admin/users", {"username": "sneaky", "password": PASSWORD, "role": "admin"}),
        ("POST", f"/admin/users/{admin.id}/role", {"role": "labeler"}),
        ("POST", f"/admin/users/{admin.id}/deactivate", {}),
        ("POST", f"/admin/users/{target.id}/activate", {}),
        ("POST", f"/admin/users/{admin.id}/reset-password", {}),
    ]
    for method, path, data in requests:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 403, (method, path)
        assert "<h1>Not allowed</h1>" in response.text
        assert error_message(response.text) == "this needs the admin role"
    assert snapshot(db) == before
