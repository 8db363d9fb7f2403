"""A user's own account pages: changing the password, being made to, and API tokens."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiToken, Role, User
from app.models.base import utcnow
from app.schemas.users import UserCreate
from app.services import users
from tests.conftest import PASSWORD, bearer, csrf_from, make_token, web_login
from tests.web.helpers import snapshot

NEW_PASSWORD = "an entirely new secret"
TOKEN = re.compile(r"^smy_[A-Za-z0-9_-]{43}$")

# --- helpers --------------------------------------------------------------------------------


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def notice(page: str) -> str | None:
    found = _texts(r'data-testid="notice">(.*?)</p>', page)
    return found[0] if found else None


def field_errors(page: str) -> dict[str, str]:
    """{field: message} for every field error, keyed by the input just above it."""
    found = re.findall(r'name="(\w+)"[^>]*>\s*<p class="field-error"[^>]*>(.*?)</p>', page)
    return {name: html.unescape(message) for name, message in found}


def error_message(page: str) -> str:
    found = _texts(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return found[0]


def new_token_shown(page: str) -> str:
    found = _texts(r'data-testid="new-token">.*?<p class="secret">(.*?)</p>', page)
    assert len(found) == 1, page
    assert TOKEN.match(found[0]), found[0]
    return found[0]


def login(client: TestClient, username: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )


def change_password(
    client: TestClient, csrf: str, current: str, new: str, confirm: str | None = None
) -> httpx.Response:
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "new_password": new,
            "confirm_password": new if confirm is None else confirm,
            "csrf_token": csrf,
        },
    )


def token_named(db: Session, name: str) -> ApiToken:
    db.expire_all()
    token = db.scalar(select(ApiToken).where(ApiToken.name == name))
    assert token is not None, name
    return token


@pytest.fixture
def lena_csrf(client: TestClient, labeler: User) -> str:
    return web_login(client, labeler.username)


# --- changing the password ------------------------------------------------------------------


def test_password_form_renders(client: TestClient, lena_csrf: str) -> None:
    response = client.get("/account/password")
    assert response.status_code == 200
    assert "<h1>Change your password</h1>" in response.text
    # Only users with a generated password see the "must change" banner.
    assert 'data-testid="must-change"' not in response.text


@pytest.mark.parametrize(
    ("current", "new", "confirm", "status", "errors"),
    [
        pytest.param(
            "not my password",
            NEW_PASSWORD,
            None,
            403,
            {"current_password": "the current password is wrong"},
            id="wrong-current",
        ),
        pytest.param(
            PASSWORD,
            NEW_PASSWORD,
            NEW_PASSWORD + "!",
            422,
            {"confirm_password": "the two new passwords differ"},
            id="mismatch",
        ),
        pytest.param(
            PASSWORD,
            "short",
            None,
            422,
            {"new_password": "a password needs at least 10 characters"},
            id="too-short",
        ),
        pytest.param(
            PASSWORD,
            "x" * 257,
            None,
            422,
            {"new_password": "a password has at most 256 characters"},
            id="too-long",
        ),
        pytest.param(
            PASSWORD,
            PASSWORD,
            None,
            422,
            {"new_password": "the new password must differ from the current one"},
            id="unchanged",
        ),
    ],
)
def test_refused_password_change_shows_why_and_changes_nothing(
    client: TestClient,
    db: Session,
    lena_csrf: str,
    current: str,
    new: str,
    confirm: str | None,
    status: int,
    errors: dict[str, str],
) -> None:
    before = snapshot(db)
    response = change_password(client, lena_csrf, current, new, confirm)
    assert response.status_code == status
    assert field_errors(response.text) == errors
    # Passwords are never echoed back into the page.
    assert current not in response.text
    assert new not in response.text
    after = snapshot(db)
    # A wrong current password counts as a failed login (rate limiting); nothing else changes.
    failed = [row for row in after.pop("login_attempts") if row not in before["login_attempts"]]
    before.pop("login_attempts")
    assert [(row[1], row[3]) for row in failed] == (  # username, succeeded
        [("lena", False)] if status == 403 else []
    )
    assert after == before
    client.cookies.clear()
    assert login(client, "lena", PASSWORD).status_code == 303


def test_password_change_succeeds_and_only_the_new_password_works(
    client: TestClient, db: Session, labeler: User, lena_csrf: str
) -> None:
    response = change_password(client, lena_csrf, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert notice(home.text) == "Your password is changed."

    client.post("/logout", data={"csrf_token": lena_csrf})
    old = login(client, "lena", PASSWORD)
    assert old.status_code == 401
    assert 'data-testid="login-error">wrong username or password<' in old.text
    new = login(client, "lena", NEW_PASSWORD)
    assert new.status_code == 303
    assert new.headers["location"] == "/"


# --- a password somebody else chose must be changed first -----------------------------------


def test_generated_password_must_be_changed_before_any_other_page(
    client: TestClient, db: Session
) -> None:
    fresh, generated = users.create_user(db, UserCreate(username="fresh", role=Role.admin))
    assert generated is not None
    logged_in = login(client, "fresh", generated)
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/account/password"
    form = client.get("/account/password")
    assert form.status_code == 200
    assert 'data-testid="must-change"' in form.text
    csrf = csrf_from(form.text)

    before = snapshot(db)
    for path in ("/", "/account/tokens", "/projects", "/projects/new", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/account/password"
    for path, data in (
        ("/account/tokens", {"name": "sneaky"}),
        ("/admin/users", {"username": "sneaky", "password": PASSWORD}),
        ("/projects", {"name": "Sneaky", "flags": "x: X"}),
    ):
        response = client.post(path, data={**data, "csrf_token": csrf})
        assert response.status_code == 303, path
        assert response.headers["location"] == "/account/password"
    # htmx cannot follow a redirect into a fragment: it is told where to navigate instead.
    hx = client.get("/admin/users", headers={"HX-Request": "true"})
    assert hx.status_code == 403
    assert hx.headers["hx-redirect"] == "/account/password"
    assert snapshot(db) == before

    changed = change_password(client, csrf, generated, NEW_PASSWORD)
    assert changed.status_code == 303
    assert changed.headers["location"] == "/"
    db.refresh(fresh)
    assert fresh.must_change_password is False
    for path in ("/", "/account/tokens", "/projects", "/admin/users"):
        assert client.get(path).status_code == 200, path


# --- API tokens -----------------------------------------------------------------------------


def test_create_token_shows_it_once_and_it_works_as_bearer(
    client: TestClient, db: Session, lena_csrf: str
) -> None:
    page = client.get("/account/tokens")
    assert page.status_code == 200
    assert "cache-control" not in page.headers
    assert 'data-testid="tokens-table"' not in page.text

    response = client.post("/account/tokens", data={"name": "laptop", "csrf_token": lena_csrf})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    token = new_token_shown(response.text)

    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["username"] == "lena"

    record = token_named(db, "laptop")
    assert record.prefix == token[:10]
    assert record.expires_at is None
    again = client.get("/account/tokens")
    assert token not in again.text
    assert f"<td>laptop</td><td><code>{record.prefix}…</code></td>" in again.text
    assert f'action="/account/tokens/{record.id}/revoke"' in again.text


def test_token_with_an_expiry(client: TestClient, db: Session, lena_csrf: str) -> None:
    response = client.post(
        "/account/tokens", data={"name": "ci", "expires_in_days": "30", "csrf_token": lena_csrf}
    )
    assert response.status_code == 201
    expires_at = token_named(db, "ci").expires_at
    assert expires_at is not None
    assert abs(expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert f"<td>{expires_at.strftime('%Y-%m-%d')}</td>" in response.text


@pytest.mark.parametrize(
    ("name", "days", "errors"),
    [
        pytest.param("", "", {"name": "String should have at least 1 character"}, id="no-name"),
        pytest.param(
            "x" * 101, "", {"name": "String should have at most 100 characters"}, id="long-name"
        ),
        pytest.param(
            "ci",
            "0",
            {"expires_in_days": "Input should be greater than or equal to 1"},
            id="zero-days",
        ),
        pytest.param(
            "ci",
            "3651",
            {"expires_in_days": "Input should be less than or equal to 3650"},
            id="too-many-days",
        ),
        pytest.param(
            "ci",
            "soon",
            {
                "expires_in_days": (
                    "Input should be a valid integer, unable to parse string as an integer"
                )
            },
            id="not-a-number",
        ),
    ],
)
def test_invalid_token_form_is_422_and_creates_nothing(
    client: TestClient,
    db: Session,
    lena_csrf: str,
    name: str,
    days: str,
    errors: dict[str, str],
) -> None:
    before = snapshot(db)
    response = client.post(
        "/account/tokens", data={"name": name, "expires_in_days": days, "csrf_token": lena_csrf}
    )
    assert response.status_code == 422
    assert field_errors(response.text) == errors
    assert 'data-testid="new-token"' not in response.text
    assert snapshot(db) == before


def test_revoked_token_stops_working(
    client: TestClient, db: Session, labeler: User, lena_csrf: str
) -> None:
    token = make_token(db, labeler, "laptop")
    record = token_named(db, "laptop")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200

    response = client.post(f"/account/tokens/{record.id}/revoke", data={"csrf_token": lena_csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/account/tokens"
    page = client.get("/account/tokens")
    assert notice(page.text) == "Revoked laptop."
    assert '<span class="tag off">revoked</span>' in page.text
    assert f'action="/account/tokens/{record.id}/revoke"' not in page.text
    assert token_named(db, "laptop").revoked_at is not None
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_cannot_revoke_another_users_token(
    client: TestClient, db: Session, researcher: User, lena_csrf: str
) -> None:
    theirs = make_token(db, researcher, "rhea-laptop")
    record = token_named(db, "rhea-laptop")
    before = snapshot(db)
    for token_id in (record.id, 999999):
        response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": lena_csrf})
        assert response.status_code == 404
        assert error_message(response.text) == f"no token with id {token_id}"
    assert snapshot(db) == before
    assert client.get("/api/v1/me", headers=bearer(theirs)).json()["username"] == "rhea"
