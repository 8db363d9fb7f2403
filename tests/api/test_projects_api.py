"""/api/v1/projects: staff read every project, labelers those with a queue open to them;
admins create and edit."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Project, QueueLabeler, User
from tests.api.helpers import (
    API,
    Json,
    db_state,
    error,
    project_json,
    validation_error,
)
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_queue

# The InstructGPT labeling interface's flags, as DESIGN.md lists them, in this order.
DESIGN_FLAGS = [
    {"key": "fails_instruction", "label": "Fails to follow the instruction"},
    {"key": "hallucination", "label": "Hallucination / made-up facts"},
    {"key": "inappropriate", "label": "Inappropriate for a customer assistant"},
    {"key": "harmful_advice", "label": "Harmful or dangerous advice"},
    {"key": "sexual", "label": "Sexual content"},
    {"key": "violent", "label": "Violent content"},
    {"key": "hateful", "label": "Hateful or discriminatory content"},
    {"key": "private_information", "label": "Contains private information"},
    {"key": "unnecessary_refusal", "label": "Unnecessary refusal"},
    {"key": "other", "label": "Other (with text)"},
]
CUSTOM_FLAGS = [
    {"key": "too_long", "label": "Too long"},
    {"key": "off_topic", "label": "Off topic"},
]
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")
UNIQUE_KEYS = "Value error, flag keys must be unique; repeated: "
FLAG_KEY_RULE = (
    "Value error, a flag key is lower-case letters, digits and '_', starting with a letter"
)


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


def create(client: TestClient, headers: dict[str, str], **body: object) -> Json:
    response = client.post(f"{API}/projects", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stored(db: Session, project_id: int) -> Project:
    db.rollback()
    project = db.get(Project, project_id)
    assert project is not None
    db.refresh(project)
    return project


# --- create ---------------------------------------------------------------------------------


def test_create_with_default_flags(
    client: TestClient, db: Session, admin: User, as_admin: dict[str, str]
) -> None:
    response = client.post(f"{API}/projects", headers=as_admin, json={"name": "  Helpful chat  "})

    assert response.status_code == 201
    project = db.scalars(select(Project)).one()
    assert response.json() == {
        "id": project.id,
        "name": "Helpful chat",
        "description": "",
        "flags": DESIGN_FLAGS,
        "is_archived": False,
        "cost_per_demonstration": None,
        "cost_per_comparison": None,
        "created_at": project_json(project)["created_at"],
        "updated_at": project_json(project)["updated_at"],
    }
    assert len(response.json()["flags"]) == 10
    assert response.json()["flags"][0]["key"] == "fails_instruction"
    assert project.label_schema == {"flags": DESIGN_FLAGS}
    assert project.created_by_id == admin.id


def test_create_with_custom_flags_and_description(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    body = create(
        client, as_admin, name="Summaries", description="Rank *summaries*.", flags=CUSTOM_FLAGS
    )

    project = stored(db, body["id"])
    assert body == project_json(project)
    assert (body["name"], body["description"], body["flags"]) == (
        "Summaries",
        "Rank *summaries*.",
        CUSTOM_FLAGS,
    )
    assert project.label_schema == {"flags": CUSTOM_FLAGS}


def test_create_with_no_flags(client: TestClient, db: Session, as_admin: dict[str, str]) -> None:
    body = create(client, as_admin, name="Bare", flags=[])

    assert body["flags"] == []
    assert stored(db, body["id"]).label_schema == {"flags": []}


@pytest.mark.parametrize(
    ("flags", "repeated"),
    [
        ([*CUSTOM_FLAGS, {"key": "too_long", "label": "Way too long"}], "too_long"),
        ([*CUSTOM_FLAGS, *CUSTOM_FLAGS], "off_topic, too_long"),
    ],
)
def test_create_with_duplicate_flag_keys_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], flags: list[Json], repeated: str
) -> None:
    before = db_state(db)

    response = client.post(f"{API}/projects", headers=as_admin, json={"name": "X", "flags": flags})

    assert response.status_code == 422
    assert response.json() == validation_error(UNIQUE_KEYS + repeated, "flags")
    assert db_state(db) == before


@pytest.mark.parametrize("key", ["Too_long", "1st", "_x", "too-long", "has space", "", "x" * 49])
def test_create_with_invalid_flag_key_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], key: str
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/projects",
        headers=as_admin,
        json={"name": "X", "flags": [{"key": key, "label": "A flag"}]},
    )

    assert response.status_code == 422
    assert response.json() == validation_error(FLAG_KEY_RULE, "flags.0.key")
    assert db_state(db) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({}, "name"),
        ({"name": "X", "archived": True}, "archived"),
        ({"name": "X", "is_archived": True}, "is_archived"),
        ({"name": "X", "flags": [{"key": "ok", "label": ""}]}, "flags.0.label"),
        ({"name": "X", "flags": [{"key": "ok", "label": "Ok", "color": "red"}]}, "flags.0.color"),
        ({"name": "X", "flags": [{"key": "ok"}]}, "flags.0.label"),
        (
            {"name": "X", "flags": [{"key": f"f{i}", "label": "F"} for i in range(51)]},
            "flags",
        ),
    ],
)
def test_create_with_invalid_body_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], body: Json, field: str
) -> None:
    before = db_state(db)

    response = client.post(f"{API}/projects", headers=as_admin, json=body)

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)
    assert db_state(db) == before


def test_duplicate_project_name_is_409(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    create(client, as_admin, name="Alpha")
    before = db_state(db)

    response = client.post(f"{API}/projects", headers=as_admin, json={"name": " Alpha "})

    assert response.status_code == 409
    assert response.json() == error("conflict", "a project named 'Alpha' exists", "name")
    assert db_state(db) == before


# --- read -----------------------------------------------------------------------------------


def test_list_excludes_archived_unless_asked(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    ids = {name: create(client, as_admin, name=name)["id"] for name in ("Gamma", "Alpha", "Beta")}
    archived = client.patch(
        f"{API}/projects/{ids['Gamma']}", headers=as_admin, json={"is_archived": True}
    )
    assert archived.status_code == 200

    default = client.get(f"{API}/projects", headers=as_admin)
    explicit = client.get(f"{API}/projects?include_archived=false", headers=as_admin)
    everything = client.get(f"{API}/projects?include_archived=true", headers=as_admin)

    expected = [project_json(stored(db, ids[name])) for name in ("Alpha", "Beta")]
    assert default.status_code == explicit.status_code == everything.status_code == 200
    assert default.json() == explicit.json() == expected
    assert everything.json() == [*expected, project_json(stored(db, ids["Gamma"]))]
    assert everything.json()[-1]["is_archived"] is True


def test_archived_project_can_still_be_read(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    project_id = create(client, as_admin, name="Old")["id"]
    client.patch(f"{API}/projects/{project_id}", headers=as_admin, json={"is_archived": True})

    response = client.get(f"{API}/projects/{project_id}", headers=as_admin)

    assert response.status_code == 200
    assert response.json() == project_json(stored(db, project_id))


def test_invalid_include_archived_is_422(client: TestClient, as_admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects?include_archived=maybe", headers=as_admin)

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", "include_archived")


def test_unknown_project_is_404(client: TestClient, as_admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects/999999", headers=as_admin)

    assert response.status_code == 404
    assert response.json() == error("not_found", "no project with id 999999")


# --- update ---------------------------------------------------------------------------------


def test_update_renames_and_describes(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    original = create(client, as_admin, name="Draft")

    response = client.patch(
        f"{API}/projects/{original['id']}",
        headers=as_admin,
        json={"name": "  Final  ", "description": "Now with guidance."},
    )

    assert response.status_code == 200
    project = stored(db, original["id"])
    assert response.json() == project_json(project)
    assert (project.name, project.description) == ("Final", "Now with guidance.")
    assert project.label_schema == {"flags": DESIGN_FLAGS}
    assert response.json()["created_at"] == original["created_at"]
    assert datetime.fromisoformat(response.json()["updated_at"]) >= datetime.fromisoformat(
        original["updated_at"]
    )


def test_update_replaces_flags_and_keeps_other_schema_keys(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    project_id = create(client, as_admin, name="Schema")["id"]
    project = stored(db, project_id)
    project.label_schema = {**project.label_schema, "score_scale": 7}
    db.commit()

    response = client.patch(
        f"{API}/projects/{project_id}", headers=as_admin, json={"flags": CUSTOM_FLAGS}
    )

    assert response.status_code == 200
    assert response.json()["flags"] == CUSTOM_FLAGS
    assert stored(db, project_id).label_schema == {"flags": CUSTOM_FLAGS, "score_scale": 7}


def test_archive_and_unarchive(client: TestClient, db: Session, as_admin: dict[str, str]) -> None:
    project_id = create(client, as_admin, name="Seasonal")["id"]

    archived = client.patch(
        f"{API}/projects/{project_id}", headers=as_admin, json={"is_archived": True}
    )
    assert archived.status_code == 200
    assert archived.json() == project_json(stored(db, project_id))
    assert archived.json()["is_archived"] is True

    restored = client.patch(
        f"{API}/projects/{project_id}", headers=as_admin, json={"is_archived": False}
    )
    assert restored.status_code == 200
    assert stored(db, project_id).is_archived is False


def test_empty_update_changes_nothing(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    original = create(client, as_admin, name="Steady")
    before = db_state(db)

    response = client.patch(f"{API}/projects/{original['id']}", headers=as_admin, json={})

    assert response.status_code == 200
    assert response.json() == original
    assert db_state(db) == before


def test_rename_to_a_taken_name_is_409(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    create(client, as_admin, name="Alpha")
    beta = create(client, as_admin, name="Beta")
    before = db_state(db)

    response = client.patch(
        f"{API}/projects/{beta['id']}",
        headers=as_admin,
        json={"name": "Alpha", "description": "lost with the rename"},
    )

    assert response.status_code == 409
    assert response.json() == error("conflict", "a project named 'Alpha' exists", "name")
    assert db_state(db) == before
    assert client.get(f"{API}/projects/{beta['id']}", headers=as_admin).json() == beta


def test_rename_to_its_own_name_is_fine(client: TestClient, as_admin: dict[str, str]) -> None:
    project = create(client, as_admin, name="Same")

    response = client.patch(
        f"{API}/projects/{project['id']}", headers=as_admin, json={"name": "Same"}
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Same"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"flags": [*CUSTOM_FLAGS, CUSTOM_FLAGS[0]]},
            validation_error(UNIQUE_KEYS + "too_long", "flags"),
        ),
        ({"name": "   "}, validation_error("Value error, a project needs a name", "name")),
        ({"owner": "lena"}, validation_error("Extra inputs are not permitted", "owner")),
        ({"created_at": None}, validation_error("Extra inputs are not permitted", "created_at")),
    ],
    ids=["duplicate-flags", "blank-name", "unknown-field", "read-only-field"],
)
def test_invalid_update_is_422(
    client: TestClient, db: Session, as_admin: dict[str, str], body: Json, expected: Json
) -> None:
    project_id = create(client, as_admin, name="Kept")["id"]
    before = db_state(db)

    response = client.patch(f"{API}/projects/{project_id}", headers=as_admin, json=body)

    assert response.status_code == 422
    assert response.json() == expected
    assert db_state(db) == before


def test_update_of_unknown_project_is_404(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    before = db_state(db)

    response = client.patch(f"{API}/projects/999999", headers=as_admin, json={"name": "Ghost"})

    assert response.status_code == 404
    assert response.json() == error("not_found", "no project with id 999999")
    assert db_state(db) == before


# --- who may do what ------------------------------------------------------------------------


@pytest.fixture(params=["labeler", "researcher"])
def reader(request: pytest.FixtureRequest) -> User:
    return request.getfixturevalue(request.param)


def test_labeler_and_researcher_can_read(
    client: TestClient, db: Session, as_admin: dict[str, str], reader: User
) -> None:
    project_id = create(client, as_admin, name="Shared", flags=CUSTOM_FLAGS)["id"]
    make_queue(db, stored(db, project_id))
    db.commit()
    headers = bearer(make_token(db, reader))

    listed = client.get(f"{API}/projects", headers=headers)
    one = client.get(f"{API}/projects/{project_id}", headers=headers)

    assert (listed.status_code, one.status_code) == (200, 200)
    assert listed.json() == [project_json(stored(db, project_id))]
    assert one.json() == project_json(stored(db, project_id))


def test_labeler_and_researcher_cannot_create_or_update(
    client: TestClient, db: Session, as_admin: dict[str, str], reader: User
) -> None:
    project_id = create(client, as_admin, name="Shared")["id"]
    headers = bearer(make_token(db, reader))
    before = db_state(db)

    created = client.post(f"{API}/projects", headers=headers, json={"name": "Mine"})
    updated = client.patch(
        f"{API}/projects/{project_id}", headers=headers, json={"is_archived": True}
    )

    assert (created.status_code, created.json()) == (403, NEEDS_ADMIN)
    assert (updated.status_code, updated.json()) == (403, NEEDS_ADMIN)
    assert db_state(db) == before
    assert stored(db, project_id).is_archived is False


def test_labelers_read_only_projects_with_a_queue_open_to_them(
    client: TestClient, db: Session, as_admin: dict[str, str], labeler: User, researcher: User
) -> None:
    ids = {
        name: create(client, as_admin, name=name)["id"]
        for name in ("Open", "Listed", "Others", "Bare", "Gone")
    }
    projects = {name: stored(db, project_id) for name, project_id in ids.items()}
    make_queue(db, projects["Open"])
    make_queue(db, projects["Gone"])
    projects["Gone"].is_archived = True
    other = make_user(db, "otto")
    for name, who in (("Listed", labeler), ("Others", other)):
        queue = make_queue(db, projects[name], open_to_all=False)
        db.add(QueueLabeler(queue_id=queue.id, user_id=who.id))
    db.commit()
    as_labeler = bearer(make_token(db, labeler))

    listed = client.get(f"{API}/projects?include_archived=true", headers=as_labeler)
    everything = client.get(
        f"{API}/projects?include_archived=true", headers=bearer(make_token(db, researcher))
    )
    answers = {
        name: client.get(f"{API}/projects/{project_id}", headers=as_labeler)
        for name, project_id in ids.items()
    }

    assert [project["name"] for project in listed.json()] == ["Listed", "Open"]
    assert [project["name"] for project in everything.json()] == [
        "Bare",
        "Gone",
        "Listed",
        "Open",
        "Others",
    ]
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "Open": 200,
        "Listed": 200,
        "Others": 404,
        "Bare": 404,
        "Gone": 404,
    }
    # The same answer as for an id that does not exist: nothing tells the project is there.
    assert answers["Bare"].json() == error("not_found", f"no project with id {ids['Bare']}")
