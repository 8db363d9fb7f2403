"""A NUL byte in a page's form field or query is a 422 page naming the field, and changes
nothing, on SQLite and on PostgreSQL alike (PostgreSQL answered 500, SQLite stored it).

A lone surrogate cannot reach a page: a form or query carries UTF-8, whose bytes for one
(ED A0 80) are invalid and read as U+FFFD; the JSON API's "\\ud800" escape is tested in
tests/api/test_unstorable_text.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.conftest import web_login
from tests.factories import make_project, make_queue
from tests.web.helpers import snapshot
from tests.web.test_guidelines_pages import error_message

NUL = "text may not contain NUL bytes"

# (form path, with {project} and {queue}; the field sent with a NUL byte in it)
FORM_FIELDS = [
    ("/projects", "name"),
    ("/projects", "description"),
    ("/projects", "flags"),
    ("/projects/{project}/edit", "name"),
    ("/projects/{project}/queues", "name"),
    ("/queues/{queue}/edit", "name"),
    ("/projects/{project}/guidelines", "body"),
    ("/projects/{project}/guidelines", "note"),
    ("/account/profile", "region"),
    ("/account/profile", "first_language"),
    ("/account/tokens", "name"),
    ("/admin/users", "display_name"),
    ("/account/password", "new_password"),
]


def test_every_named_form_field_refuses_a_nul_byte(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db, creator=admin)
    queue = make_queue(db, project)
    db.commit()
    csrf = web_login(client, admin.username)
    before = snapshot(db)

    answers = {}
    for path, field in FORM_FIELDS:
        url = path.format(project=project.id, queue=queue.id)
        response = client.post(url, data={"csrf_token": csrf, field: "a\x00b"})
        answers[(path, field)] = (response.status_code, error_message(response.text))

    assert answers == {(path, field): (422, f"{field}: {NUL}") for path, field in FORM_FIELDS}
    assert snapshot(db) == before


@pytest.mark.parametrize("query", ["task_name=a%00b", "state=%00"])
def test_the_task_events_filter_page_refuses_a_nul_byte(
    client: TestClient, admin: User, query: str
) -> None:
    web_login(client, admin.username)

    response = client.get(f"/admin/task-events?{query}")

    assert response.status_code == 422
    assert error_message(response.text) == f"{query.split('=')[0]}: {NUL}"
    assert "\x00" not in response.text
