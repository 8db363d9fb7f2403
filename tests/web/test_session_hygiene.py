"""Logins end when they should: own password change, stale forms."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import User, UserSession
from app.models.base import utcnow
from tests.conftest import PASSWORD, web_login


def test_changing_own_password_ends_other_sessions_but_not_this_one(
    app: FastAPI, db: Session, labeler: User
) -> None:
    with (
        TestClient(app, follow_redirects=False) as laptop,
        TestClient(app, follow_redirects=False) as phone,
    ):
        laptop_csrf = web_login(laptop, "lena")
        web_login(phone, "lena")
        assert phone.get("/").status_code == 200
        response = laptop.post(
            "/account/password",
            data={
                "current_password": PASSWORD,
                "new_password": "a brand new password",
                "confirm_password": "a brand new password",
                "csrf_token": laptop_csrf,
            },
        )
        assert (response.status_code, response.headers["location"]) == (303, "/")
        assert laptop.get("/").status_code == 200
        answer = phone.get("/")
        assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert len(db.scalars(select(UserSession).where(UserSession.user_id == labeler.id)).all()) == 1


def test_form_posted_after_the_session_expired_asks_to_log_in_again(
    client: TestClient, db: Session, admin: User
) -> None:
    csrf = web_login(client, "root-admin")
    session = db.scalars(select(UserSession).where(UserSession.user_id == admin.id)).one()
    session.expires_at = utcnow() - timedelta(minutes=1)
    db.commit()
    # Back to the form's page after logging in (a browser sends it as the Referer), not to
    # the POST route, which has no page of its own.
    response = client.post(
        "/projects",
        data={"name": "Late", "flags": "", "csrf_token": csrf},
        headers={"Referer": "http://testserver/projects/new"},
    )
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/login?next=%2Fprojects%2Fnew",
    )
