"""Error pages are titled for what happened: a 403 says "Not allowed", with the reason."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.conftest import web_login


def test_a_403_page_is_titled_not_allowed_and_gives_the_reason(
    client: TestClient, db: Session, labeler: User
) -> None:
    web_login(client, labeler.username)
    response = client.get("/projects")
    assert response.status_code == 403
    page = response.text
    assert re.findall(r"<title>(.*?)</title>", page) == ["Not allowed · Smiley"]
    assert re.findall(r"<h1>(.*?)</h1>", page) == ["Not allowed"]
    assert re.findall(r'data-testid="error-explanation">(.*?)</p>', page) == [
        "You don't have access to this page."
    ]
    assert re.findall(r'data-testid="error-message">(.*?)</p>', page) == [
        "this needs the admin or researcher role"
    ]
    assert "Something went wrong" not in page


def test_a_404_page_keeps_its_own_title(client: TestClient, db: Session, admin: User) -> None:
    web_login(client, admin.username)
    page = client.get("/projects/999999").text
    assert re.findall(r"<title>(.*?)</title>", page) == ["Not found · Smiley"]
    assert 'data-testid="error-explanation"' not in page
