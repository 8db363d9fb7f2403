"""GET /api/v1/docs: Swagger UI for signed-in users, every file from this origin."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Role, User
from tests.conftest import make_user, web_login


def test_anonymous_is_sent_to_log_in_and_back(client: TestClient) -> None:
    response = client.get("/api/v1/docs")

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fapi%2Fv1%2Fdocs"


def test_a_signed_in_labeler_gets_the_page_pointing_at_the_schema(
    client: TestClient, labeler: User
) -> None:
    web_login(client, labeler.username)

    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert (
        '<div id="swagger-ui" data-openapi-url="/api/v1/openapi.json" '
        'data-testid="swagger-ui"></div>'
    ) in response.text
    assert "https://" not in response.text and "http://" not in response.text


def test_a_generated_password_must_be_changed_first(client: TestClient, db: Session) -> None:
    user = make_user(db, "newcomer", Role.researcher)
    web_login(client, user.username)
    user.must_change_password = True  # as after an admin's password reset
    db.commit()

    response = client.get("/api/v1/docs")

    assert (response.status_code, response.headers["location"]) == (303, "/account/password")


def test_the_vendored_files_are_served(client: TestClient) -> None:
    for path, content_type in (
        ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("/static/vendor/swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
        ("/static/vendor/swagger-ui/favicon-32x32.png", "image/png"),
        ("/static/js/api-docs.js", "text/javascript; charset=utf-8"),
    ):
        response = client.get(path)
        assert (response.status_code, response.headers["content-type"]) == (200, content_type)
