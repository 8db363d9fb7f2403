"""A NUL byte or a lone surrogate in any text field is a 422 naming the field, and changes
nothing, on SQLite and on PostgreSQL alike.

Both pass Python and JSON but not the database: PostgreSQL refuses NUL in text and JSONB (a 500
before `Text`), SQLite stored it; neither driver can encode a lone surrogate. One field of each
kind the issue names is sent both ways; tests/test_text_fields.py checks that every other text
input of the app is `Text` too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Project, Prompt, Queue, User
from tests.api.helpers import API
from tests.conftest import bearer, make_token
from tests.factories import make_project, make_prompt, make_queue
from tests.web.helpers import snapshot

NUL = "text may not contain NUL bytes"
SURROGATE = "text contains invalid unicode (a lone surrogate)"
BAD = [("a\x00b", NUL), ("a\ud800b", SURROGATE)]


# (method, path with {project}/{queue}/{prompt}/{user}, the body around a value, its field)
CASES: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("POST", "/projects", lambda v: {"name": v}, "name"),
    ("POST", "/projects", lambda v: {"name": "Chat", "description": v}, "description"),
    (
        "POST",
        "/projects",
        lambda v: {"name": "Chat", "flags": [{"key": "tone", "label": v}]},
        "flags.0.label",
    ),
    ("PATCH", "/projects/{project}", lambda v: {"name": v}, "name"),
    ("POST", "/projects/{project}/queues", lambda v: {"name": v, "kind": "comparison"}, "name"),
    ("PATCH", "/queues/{queue}", lambda v: {"name": v}, "name"),
    ("POST", "/projects/{project}/guidelines", lambda v: {"body": v}, "body"),
    ("POST", "/projects/{project}/guidelines", lambda v: {"body": "Be kind.", "note": v}, "note"),
    (
        "POST",
        "/projects/{project}/prompts",
        lambda v: {"messages": [{"role": "user", "content": v}]},
        "messages.0.content",
    ),
    (
        "POST",
        "/projects/{project}/prompts",
        lambda v: {"messages": [{"role": "user", "content": "Hi"}], "source": v},
        "source",
    ),
    ("POST", "/prompts/{prompt}/responses", lambda v: {"content": v}, "content"),
    (
        "POST",
        "/prompts/{prompt}/responses",
        lambda v: {"content": "Hello", "source_name": v},
        "source_name",
    ),
    ("POST", "/tokens", lambda v: {"name": v}, "name"),
    ("PATCH", "/users/{user}", lambda v: {"display_name": v}, "display_name"),
    (
        "POST",
        "/users",
        lambda v: {"username": "newbie", "password": f"long enough {v}"},
        "password",
    ),
    (
        "POST",
        "/projects/{project}/imports",
        lambda v: {"name": "rows.jsonl", "source": v},
        "source",
    ),
]


@pytest.fixture
def rows(db: Session, admin: User) -> tuple[Project, Queue, Prompt]:
    project = make_project(db, creator=admin)
    queue = make_queue(db, project)
    prompt = make_prompt(db, project)
    db.commit()
    return project, queue, prompt


def admin_headers(client: TestClient, db: Session, admin: User) -> dict[str, str]:
    """A token that has been used once: its last_used_at then stays put for a minute, so the
    snapshot before and after a refused request can be compared whole."""
    headers = bearer(make_token(db, admin))
    assert client.get(f"{API}/me", headers=headers).status_code == 200
    return headers


def _url(path: str, rows: tuple[Project, Queue, Prompt], admin: User) -> str:
    project, queue, prompt = rows
    return API + path.format(project=project.id, queue=queue.id, prompt=prompt.id, user=admin.id)


@pytest.mark.parametrize(("value", "problem"), BAD, ids=["nul", "surrogate"])
def test_every_named_body_field_refuses_unstorable_text(
    client: TestClient,
    db: Session,
    admin: User,
    rows: tuple[Project, Queue, Prompt],
    value: str,
    problem: str,
) -> None:
    headers = {**admin_headers(client, db, admin), "content-type": "application/json"}
    before = snapshot(db)

    answers = {}
    for method, path, body, field in CASES:
        # json.dumps escapes a lone surrogate as "\ud800", as any client's JSON encoder sends it.
        response = client.request(
            method, _url(path, rows, admin), content=json.dumps(body(value)), headers=headers
        )
        answers[(method, path, field)] = (response.status_code, response.json()["error"])

    message = f"Value error, {problem}"
    assert answers == {
        (method, path, field): (
            422,
            {
                "code": "invalid_request",
                "message": f"body.{field}: {message}",
                "field": field,
                "problems": [
                    {"location": f"body.{field}", "message": message, "type": "value_error"}
                ],
            },
        )
        for method, path, body, field in CASES
    }
    assert snapshot(db) == before


@pytest.mark.parametrize(("value", "problem"), BAD, ids=["nul", "surrogate"])
def test_a_runs_lora_target_modules_refuse_unstorable_text(
    client: TestClient,
    db: Session,
    admin: User,
    rows: tuple[Project, Queue, Prompt],
    value: str,
    problem: str,
) -> None:
    headers = {**admin_headers(client, db, admin), "content-type": "application/json"}
    before = snapshot(db)
    body = {
        "kind": "sft",
        "base_model_ref": "org/model",
        "hyperparameters": {"lora": {"target_modules": ["q_proj", value]}},
    }

    response = client.post(
        _url("/projects/{project}/runs", rows, admin),
        content=json.dumps(body),
        headers=headers,
    )

    field = "hyperparameters.lora.target_modules.1"
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_input",
        "message": f"{field}: {problem}",
        "field": field,
    }
    assert snapshot(db) == before


def test_a_hyperparameter_name_refuses_a_nul_byte(
    client: TestClient, db: Session, admin: User, rows: tuple[Project, Queue, Prompt]
) -> None:
    headers = admin_headers(client, db, admin)
    before = snapshot(db)
    body = {"kind": "sft", "base_model_ref": "org/model", "hyperparameters": {"lr\x00": 1}}

    response = client.post(
        _url("/projects/{project}/runs", rows, admin), json=body, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "hyperparameters.lr\x00.[key]"
    assert response.json()["error"]["problems"][0]["message"] == f"Value error, {NUL}"
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("task_name=a%00b", f"Value error, {NUL}"),
        ("state=%00", f"Value error, {NUL}"),
    ],
)
def test_the_task_events_filter_refuses_a_nul_byte(
    client: TestClient, db: Session, admin: User, query: str, message: str
) -> None:
    field = query.split("=")[0]

    response = client.get(f"{API}/admin/task-events?{query}", headers=bearer(make_token(db, admin)))

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": f"query.{field}: {message}",
        "field": field,
        "problems": [{"location": f"query.{field}", "message": message, "type": "value_error"}],
    }


def test_invalid_utf8_in_a_query_is_not_a_lone_surrogate(
    client: TestClient, db: Session, admin: User
) -> None:
    # A surrogate cannot be percent-encoded as UTF-8; its bytes (ED A0 80) are invalid UTF-8,
    # which the server reads as U+FFFD: a filter that matches nothing, not an error.
    response = client.get(
        f"{API}/admin/task-events?task_name=a%ED%A0%80b", headers=bearer(make_token(db, admin))
    )

    assert response.status_code == 200
    assert response.json() == []
