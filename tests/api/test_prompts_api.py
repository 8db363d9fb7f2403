"""/api/v1 prompts and responses: admins and researchers only (responses show their source)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Project, Prompt, Response, User
from tests.api.helpers import API, Json, db_state, error, iso, reload, validation_error
from tests.conftest import bearer, make_token

TABLES = ("prompts", "responses")
NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")
HELLO = [{"role": "user", "content": "Hello?"}]


@pytest.fixture
def project(db: Session) -> Project:
    project = Project(name="Chat", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


@pytest.fixture(params=["admin", "researcher"])
def staff(request: pytest.FixtureRequest, db: Session) -> dict[str, str]:
    return bearer(make_token(db, request.getfixturevalue(request.param)))


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


def invalid(message: str, field: str, kind: str) -> Json:
    """The 422 body for one invalid body field whose pydantic error type the helper lacks."""
    body = validation_error("Field required", field)
    body["error"]["message"] = f"body.{field}: {message}"
    body["error"]["problems"] = [{"location": f"body.{field}", "message": message, "type": kind}]
    return body


def prompt_json(prompt: Prompt) -> Json:
    return {
        "id": prompt.id,
        "project_id": prompt.project_id,
        "messages": prompt.messages,
        "category": prompt.category.value,
        "source": prompt.source,
        "content_hash": prompt.content_hash,
        "created_by_id": prompt.created_by_id,
        "created_at": iso(prompt.created_at),
    }


def response_json(response: Response) -> Json:
    return {
        "id": response.id,
        "prompt_id": response.prompt_id,
        "content": response.content,
        "source": response.source.value,
        "source_name": response.source_name,
        "author_id": response.author_id,
        "model_id": response.model_id,
        "run_id": response.run_id,
        "sampling": response.sampling,
        "parent_id": response.parent_id,
        "created_at": iso(response.created_at),
    }


def create_prompt(
    client: TestClient, headers: dict[str, str], project_id: int, **body: object
) -> Json:
    response = client.post(
        f"{API}/projects/{project_id}/prompts", headers=headers, json={"messages": HELLO, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


# --- prompts ----------------------------------------------------------------------------------


def test_staff_create_a_prompt(
    client: TestClient, db: Session, project: Project, staff: dict[str, str]
) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
    ]
    response = client.post(
        f"{API}/projects/{project.id}/prompts",
        headers=staff,
        json={"messages": messages, "category": "closed_qa", "source": "seed"},
    )

    assert response.status_code == 201
    prompt = reload(db, db.get(Prompt, response.json()["id"]))
    assert response.json() == prompt_json(prompt)
    assert (prompt.messages, prompt.category.value, prompt.source) == (
        messages,
        "closed_qa",
        "seed",
    )
    canonical = (
        '[{"content":"You are terse.","role":"system"},'
        '{"content":"Capital of France?","role":"user"}]'
    )
    assert prompt.content_hash == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"messages": []},
            validation_error("Value error, a prompt needs at least one message", "messages"),
        ),
        (
            {"messages": [*HELLO, {"role": "assistant", "content": "Hi"}]},
            validation_error("Value error, a prompt must end with a user turn", "messages"),
        ),
        (
            {"messages": [*HELLO, {"role": "system", "content": "x"}, *HELLO]},
            validation_error("Value error, a system message can only come first", "messages"),
        ),
        ({"category": "other", "source": "x"}, validation_error("Field required", "messages")),
        (
            {"messages": HELLO, "project_id": 3},
            validation_error("Extra inputs are not permitted", "project_id"),
        ),
    ],
    ids=["no-messages", "ends-with-assistant", "system-later", "missing", "extra"],
)
def test_invalid_prompt_is_422_and_adds_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    expected: Json,
) -> None:
    before = db_state(db, TABLES)
    response = client.post(f"{API}/projects/{project.id}/prompts", headers=as_admin, json=body)
    assert response.status_code == 422
    assert response.json() == expected
    assert db_state(db, TABLES) == before


def test_blank_content_names_the_message(
    client: TestClient, project: Project, as_admin: dict[str, str]
) -> None:
    response = client.post(
        f"{API}/projects/{project.id}/prompts",
        headers=as_admin,
        json={"messages": [{"role": "user", "content": "   "}]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "messages.0.content"
    assert response.json()["error"]["message"] == (
        "body.messages.0.content: Value error, a message's content cannot be blank"
    )


def test_list_prompts_is_paginated(
    client: TestClient, db: Session, project: Project, staff: dict[str, str]
) -> None:
    made = [
        create_prompt(client, staff, project.id, messages=[{"role": "user", "content": f"q{i}"}])
        for i in range(3)
    ]

    first = client.get(f"{API}/projects/{project.id}/prompts?limit=2", headers=staff)
    rest = client.get(f"{API}/projects/{project.id}/prompts?limit=2&offset=2", headers=staff)

    assert first.status_code == rest.status_code == 200
    assert first.json() == {"items": made[:2], "total": 3, "limit": 2, "offset": 0}
    assert rest.json() == {"items": made[2:], "total": 3, "limit": 2, "offset": 2}


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "offset=-1"])
def test_bad_page_is_422(
    client: TestClient, project: Project, as_admin: dict[str, str], query: str
) -> None:
    response = client.get(f"{API}/projects/{project.id}/prompts?{query}", headers=as_admin)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == query.split("=")[0]


def test_get_prompt(
    client: TestClient, project: Project, as_admin: dict[str, str], staff: dict[str, str]
) -> None:
    made = create_prompt(client, as_admin, project.id, category="chat")
    response = client.get(f"{API}/prompts/{made['id']}", headers=staff)
    assert (response.status_code, response.json()) == (200, made)


def test_unknown_project_and_prompt_are_404(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    before = db_state(db, TABLES)
    answers = [
        client.post(f"{API}/projects/999999/prompts", headers=as_admin, json={"messages": HELLO}),
        client.get(f"{API}/projects/999999/prompts", headers=as_admin),
    ]
    assert [(a.status_code, a.json()) for a in answers] == [
        (404, error("not_found", "no project with id 999999"))
    ] * 2
    answers = [
        client.get(f"{API}/prompts/999999", headers=as_admin),
        client.get(f"{API}/prompts/999999/responses", headers=as_admin),
        client.post(f"{API}/prompts/999999/responses", headers=as_admin, json={"content": "x"}),
    ]
    assert [(a.status_code, a.json()) for a in answers] == [
        (404, error("not_found", "no prompt with id 999999"))
    ] * 3
    assert db_state(db, TABLES) == before


# --- responses --------------------------------------------------------------------------------


def test_staff_add_and_list_responses_with_their_source(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    researcher: User,
) -> None:
    prompt_id = create_prompt(client, as_admin, project.id)["id"]
    as_researcher = bearer(make_token(db, researcher))

    imported = client.post(
        f"{API}/prompts/{prompt_id}/responses",
        headers=as_admin,
        json={"content": "Paris.", "source_name": "hh-rlhf"},
    )
    written = client.post(
        f"{API}/prompts/{prompt_id}/responses",
        headers=as_researcher,
        json={"content": "It is Paris.", "source": "human"},
    )

    assert (imported.status_code, written.status_code) == (201, 201)
    first = reload(db, db.get(Response, imported.json()["id"]))
    second = reload(db, db.get(Response, written.json()["id"]))
    assert imported.json() == response_json(first)
    assert written.json() == response_json(second)
    assert (imported.json()["source"], imported.json()["author_id"]) == ("import", None)
    assert (written.json()["source"], written.json()["author_id"]) == ("human", researcher.id)

    listed = client.get(f"{API}/prompts/{prompt_id}/responses", headers=as_researcher)
    assert (listed.status_code, listed.json()) == (200, [imported.json(), written.json()])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"content": ""},
            invalid("String should have at least 1 character", "content", "string_too_short"),
        ),
        (
            {"content": "x", "source": "model"},
            validation_error("Value error, a model response needs its model_id", "model_id"),
        ),
        (
            {"content": "x", "source": "model", "model_id": 999999},
            error("invalid_input", "no model with id 999999", "model_id"),
        ),
    ],
    ids=["empty", "model-without-id", "unknown-model"],
)
def test_invalid_response_is_422_and_adds_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    expected: Json,
) -> None:
    prompt_id = create_prompt(client, as_admin, project.id)["id"]
    before = db_state(db, TABLES)
    response = client.post(f"{API}/prompts/{prompt_id}/responses", headers=as_admin, json=body)
    assert (response.status_code, response.json()) == (422, expected)
    assert db_state(db, TABLES) == before


# --- who may ----------------------------------------------------------------------------------


def test_labelers_get_403_on_every_prompt_route(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str], labeler: User
) -> None:
    prompt_id = create_prompt(client, as_admin, project.id)["id"]
    headers = bearer(make_token(db, labeler))
    before = db_state(db, TABLES)

    answers = [
        client.post(
            f"{API}/projects/{project.id}/prompts", headers=headers, json={"messages": HELLO}
        ),
        client.get(f"{API}/projects/{project.id}/prompts", headers=headers),
        client.get(f"{API}/prompts/{prompt_id}", headers=headers),
        client.post(f"{API}/prompts/{prompt_id}/responses", headers=headers, json={"content": "x"}),
        client.get(f"{API}/prompts/{prompt_id}/responses", headers=headers),
        client.get(f"{API}/prompts/999999/responses", headers=headers),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [(403, NEEDS_STAFF)] * 6
    assert db_state(db, TABLES) == before


def test_no_token_is_401(client: TestClient, project: Project) -> None:
    response = client.get(f"{API}/projects/{project.id}/prompts")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_ids_too_large_for_the_database_are_unknown(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    big = 2**31
    prompt_id = create_prompt(client, as_admin, project.id)["id"]
    before = db_state(db, TABLES)

    prompt = client.get(f"{API}/prompts/{big}", headers=as_admin)
    listed = client.get(f"{API}/projects/{big}/prompts", headers=as_admin)
    model = client.post(
        f"{API}/prompts/{prompt_id}/responses",
        headers=as_admin,
        json={"content": "x", "source": "model", "model_id": big},
    )

    assert (prompt.status_code, prompt.json()) == (
        404,
        error("not_found", f"no prompt with id {big}"),
    )
    assert (listed.status_code, listed.json()) == (
        404,
        error("not_found", f"no project with id {big}"),
    )
    assert (model.status_code, model.json()) == (
        422,
        error("invalid_input", f"no model with id {big}", "model_id"),
    )
    assert db_state(db, TABLES) == before
