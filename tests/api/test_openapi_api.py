"""GET /api/v1/openapi.json: the schema for signed-in users only, by token or session."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Role, User
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token, make_user, web_login

SIGN_IN = error(
    "authentication_failed", "log in, or send an API token as 'Authorization: Bearer <token>'"
)


def test_anonymous_gets_401_and_no_schema(client: TestClient) -> None:
    response = client.get(f"{API}/openapi.json")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == SIGN_IN


def test_a_wrong_token_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/openapi.json", headers=bearer("smiley_not-a-token"))

    assert response.status_code == 401
    assert response.json() == error(
        "authentication_failed",
        "the API token is unknown, revoked, expired or its user inactive",
    )


@pytest.mark.parametrize("role", [Role.labeler, Role.researcher, Role.admin])
def test_any_signed_in_role_reads_it_by_token(client: TestClient, db: Session, role: Role) -> None:
    token = make_token(db, make_user(db, "reader", role))

    response = client.get(f"{API}/openapi.json", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["info"] == {
        "title": "Smiley",
        "summary": "Human feedback for post-training language models",
        "version": "0.1.0",
    }


def test_a_browser_session_reads_it(client: TestClient, labeler: User) -> None:
    web_login(client, labeler.username)

    response = client.get(f"{API}/openapi.json")

    assert response.status_code == 200
    assert response.json()["paths"]["/api/v1/me"]["get"]["tags"] == ["auth"]


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", f"{API}/redoc"])
def test_fastapis_own_public_routes_are_gone(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404
