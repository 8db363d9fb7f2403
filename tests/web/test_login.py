import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import LoginAttempt, User, UserSession
from tests.conftest import PASSWORD, csrf_from, make_user, web_login


def test_login_sets_httponly_samesite_cookie_and_lands_home(
    client: TestClient, admin: User
) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": "Root-Admin", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = next(
        value for value in response.headers.get_list("set-cookie") if "smiley_session=" in value
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    home = client.get("/")
    assert home.status_code == 200
    assert 'data-testid="whoami">root-admin · admin<' in home.text


def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: TestClient, db: Session, admin: User
) -> None:
    answers = []
    for username in ("root-admin", "nobody"):
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "username": username,
                "password": "wrong-password",
                "csrf_token": csrf_from(page.text),
            },
        )
        answers.append((response.status_code, "wrong username or password" in response.text))
    assert answers == [(401, True), (401, True)]
    assert db.scalar(select(func.count()).select_from(UserSession)) == 0


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("a\x00b", PASSWORD, "username: text may not contain NUL bytes"),
        ("root-admin", "pass\x00word-long", "password: text may not contain NUL bytes"),
    ],
)
def test_a_nul_byte_is_a_422_on_the_login_page_and_records_nothing(
    client: TestClient, db: Session, admin: User, username: str, password: str, message: str
) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )

    assert response.status_code == 422
    assert message in response.text
    assert "\x00" not in response.text
    assert db.scalar(select(func.count()).select_from(LoginAttempt)) == 0
    assert db.scalar(select(func.count()).select_from(UserSession)) == 0


def test_login_without_csrf_token_is_refused(client: TestClient, db: Session, admin: User) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "root-admin", "password": PASSWORD})
    assert response.status_code == 403
    assert "security token" in response.text
    assert db.scalar(select(func.count()).select_from(LoginAttempt)) == 0


def test_logged_in_pages_need_login(client: TestClient) -> None:
    response = client.get("/admin/users")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fadmin%2Fusers"


def test_labeler_gets_403_on_admin_page(client: TestClient, db: Session) -> None:
    make_user(db, "lena")
    web_login(client, "lena")
    response = client.get("/admin/users")
    assert response.status_code == 403
