"""/api/v1/projects/{id}/guidelines: versions, publishing, the current one and diffs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import GuidelineVersion, Project, QueueLabeler, User
from app.schemas.guidelines import GuidelineSave
from app.services import guidelines
from tests.api.helpers import (
    API,
    TRACKED_TABLES,
    Json,
    db_state,
    error,
    iso,
    validation_error,
)
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_queue

TABLES = (*TRACKED_TABLES, "guideline_versions")
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")
V1 = "# Rules\n\nBe kind.\nBe brief.\n"
V2 = "# Rules\n\nBe kind.\nBe accurate.\n"


@pytest.fixture
def project(db: Session) -> Project:
    """A project with a queue open to every labeler, so labelers may read its guideline."""
    project = Project(name="Chat", label_schema={"flags": []})
    db.add(project)
    db.commit()
    make_queue(db, project)
    db.commit()
    return project


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


@pytest.fixture(params=["labeler", "researcher"])
def as_reader(request: pytest.FixtureRequest, db: Session) -> dict[str, str]:
    """A signed-in user who may read guidelines but not change them."""
    return bearer(make_token(db, request.getfixturevalue(request.param)))


def url(project: Project | int, rest: str = "") -> str:
    project_id = project if isinstance(project, int) else project.id
    return f"{API}/projects/{project_id}/guidelines{rest}"


def add(db: Session, project: Project, admin: User, body: str, note: str = "") -> GuidelineVersion:
    return guidelines.save_version(
        db, project.id, GuidelineSave(body=body, note=note), acting=admin
    )


def stored(db: Session, project: Project, version: int) -> GuidelineVersion:
    db.rollback()
    found = db.scalar(
        select(GuidelineVersion).where(
            GuidelineVersion.project_id == project.id, GuidelineVersion.version == version
        )
    )
    assert found is not None
    db.refresh(found)
    return found


def summary_json(found: GuidelineVersion) -> Json:
    return {
        "project_id": found.project_id,
        "version": found.version,
        "note": found.note,
        "status": "draft" if found.published_at is None else "published",
        "published_at": iso(found.published_at),
        "created_by_id": found.created_by_id,
        "created_at": iso(found.created_at),
    }


def version_json(found: GuidelineVersion) -> Json:
    return {**summary_json(found), "body": found.body}


# --- saving ---------------------------------------------------------------------------------


def test_admin_saves_version_1_as_a_draft(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    response = client.post(url(project), headers=as_admin, json={"body": V1, "note": " first "})

    assert response.status_code == 201
    saved = stored(db, project, 1)
    assert response.json() == {
        "project_id": project.id,
        "version": 1,
        "note": "first",
        "status": "draft",
        "published_at": None,
        "created_by_id": admin.id,
        "created_at": iso(saved.created_at),
        "body": V1,
    }
    assert (saved.body, saved.note, saved.published_at) == (V1, "first", None)


def test_saving_again_adds_version_2_and_keeps_version_1(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    first = client.post(url(project), headers=as_admin, json={"body": V1}).json()

    response = client.post(url(project), headers=as_admin, json={"body": V2})

    assert response.status_code == 201
    assert response.json() == version_json(stored(db, project, 2))
    assert response.json()["version"] == 2
    assert version_json(stored(db, project, 1)) == first


def test_saving_an_unchanged_body_is_422(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    add(db, project, admin, V1)
    before = db_state(db, TABLES)

    response = client.post(url(project), headers=as_admin, json={"body": V1, "note": "again"})

    assert response.status_code == 422
    assert response.json() == error("invalid_input", "nothing changed since version 1", "body")
    assert db_state(db, TABLES) == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"body": ""}, validation_error("Value error, a guideline needs a body", "body")),
        ({"body": " \n "}, validation_error("Value error, a guideline needs a body", "body")),
        ({"note": "no body"}, validation_error("Field required", "body")),
        (
            {"body": V1, "version": 7},
            validation_error("Extra inputs are not permitted", "version"),
        ),
    ],
    ids=["empty", "blank", "missing", "extra-field"],
)
def test_invalid_save_is_422_and_changes_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    expected: Json,
) -> None:
    before = db_state(db, TABLES)

    response = client.post(url(project), headers=as_admin, json=body)

    assert response.status_code == 422
    assert response.json() == expected
    assert db_state(db, TABLES) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"body": "x" * 200_001}, "body"),
        ({"body": V1, "note": "n" * 501}, "note"),
        ({"body": 12}, "body"),
    ],
    ids=["body-too-long", "note-too-long", "not-text"],
)
def test_oversized_or_mistyped_save_is_422(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    field: str,
) -> None:
    before = db_state(db, TABLES)

    response = client.post(url(project), headers=as_admin, json=body)

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)
    assert db_state(db, TABLES) == before


def test_longest_body_is_saved(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    response = client.post(url(project), headers=as_admin, json={"body": "x" * 200_000})

    assert response.status_code == 201
    assert len(stored(db, project, 1).body) == 200_000


# --- publishing -----------------------------------------------------------------------------


def test_publish_makes_a_draft_current(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    add(db, project, admin, V1)

    response = client.post(url(project, "/1/publish"), headers=as_admin)

    assert response.status_code == 200
    published = stored(db, project, 1)
    assert published.published_at is not None
    assert response.json() == version_json(published)
    assert response.json()["status"] == "published"
    current = client.get(url(project, "/current"), headers=as_admin)
    assert (current.status_code, current.json()) == (200, version_json(published))


def test_publishing_twice_is_409(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    add(db, project, admin, V1)
    guidelines.publish_version(db, project.id, 1)
    before = db_state(db, TABLES)

    response = client.post(url(project, "/1/publish"), headers=as_admin)

    assert response.status_code == 409
    assert response.json() == error("conflict", "version 1 is already published")
    assert db_state(db, TABLES) == before


def test_publishing_an_older_draft_after_a_newer_version_is_409(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    guidelines.publish_version(db, project.id, 2)
    before = db_state(db, TABLES)

    response = client.post(url(project, "/1/publish"), headers=as_admin)

    assert response.status_code == 409
    assert response.json() == error(
        "conflict",
        "version 2 is published and newer than version 1; save a new version instead",
    )
    assert db_state(db, TABLES) == before
    assert stored(db, project, 1).published_at is None


# --- reading --------------------------------------------------------------------------------


def test_researchers_list_get_and_read_every_version(
    client: TestClient, db: Session, admin: User, researcher: User, project: Project
) -> None:
    add(db, project, admin, V1, note="start")
    add(db, project, admin, V2, note="accuracy")
    guidelines.publish_version(db, project.id, 1)
    one, two = stored(db, project, 1), stored(db, project, 2)
    as_researcher = bearer(make_token(db, researcher))

    listed = client.get(url(project), headers=as_researcher)
    got = client.get(url(project, "/2"), headers=as_researcher)
    current = client.get(url(project, "/current"), headers=as_researcher)

    assert (listed.status_code, listed.json()) == (200, [summary_json(one), summary_json(two)])
    assert [item["status"] for item in listed.json()] == ["published", "draft"]
    assert "body" not in listed.json()[0]
    assert (got.status_code, got.json()) == (200, version_json(two))
    assert (current.status_code, current.json()) == (200, version_json(one))


def test_labelers_read_only_published_versions(
    client: TestClient, db: Session, admin: User, labeler: User, project: Project
) -> None:
    add(db, project, admin, V1, note="start")
    add(db, project, admin, V2, note="accuracy")
    guidelines.publish_version(db, project.id, 1)
    one = stored(db, project, 1)
    as_labeler = bearer(make_token(db, labeler))
    no_draft = error("not_found", f"project {project.id} has no guideline version 2")

    listed = client.get(url(project), headers=as_labeler)
    published = client.get(url(project, "/1"), headers=as_labeler)
    draft = client.get(url(project, "/2"), headers=as_labeler)
    diff = client.get(url(project, "/diff?from=1&to=2"), headers=as_labeler)
    current = client.get(url(project, "/current"), headers=as_labeler)

    assert (listed.status_code, listed.json()) == (200, [summary_json(one)])
    assert (published.status_code, published.json()) == (200, version_json(one))
    assert (draft.status_code, draft.json()) == (404, no_draft)
    assert (diff.status_code, diff.json()) == (404, no_draft)
    assert (current.status_code, current.json()) == (200, version_json(one))


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", ""),
        ("GET", "/guidelines"),
        ("GET", "/guidelines/1"),
        ("GET", "/guidelines/current"),
        ("GET", "/guidelines/diff?from=1&to=1"),
        ("GET", "/guideline/status"),
        ("POST", "/guideline/read"),
    ],
)
def test_labelers_read_nothing_of_a_project_without_a_queue_open_to_them(
    client: TestClient, db: Session, admin: User, labeler: User, method: str, rest: str
) -> None:
    closed = Project(name="Closed", label_schema={"flags": []})
    db.add(closed)
    db.commit()
    add(db, closed, admin, V1)
    guidelines.publish_version(db, closed.id, 1)
    # A queue listing only another labeler: not open to this one.
    other = make_user(db, "otto")
    queue = make_queue(db, closed, open_to_all=False)
    db.add(QueueLabeler(queue_id=queue.id, user_id=other.id))
    db.commit()

    headers = bearer(make_token(db, labeler))
    before = db_state(db, (*TABLES, "guideline_reads"))

    response = client.request(method, f"{API}/projects/{closed.id}{rest}", headers=headers)

    assert (response.status_code, response.json()) == (
        404,
        error("not_found", f"no project with id {closed.id}"),
    )
    assert db_state(db, (*TABLES, "guideline_reads")) == before


def test_empty_list(client: TestClient, project: Project, as_admin: dict[str, str]) -> None:
    response = client.get(url(project), headers=as_admin)

    assert (response.status_code, response.json()) == (200, [])


def test_current_is_404_until_a_version_is_published(
    client: TestClient, db: Session, admin: User, project: Project, as_reader: dict[str, str]
) -> None:
    expected = error("not_found", f"project {project.id} has no published guideline")
    assert client.get(url(project, "/current"), headers=as_reader).json() == expected

    add(db, project, admin, V1)
    response = client.get(url(project, "/current"), headers=as_reader)

    assert (response.status_code, response.json()) == (404, expected)


def test_diff_is_a_unified_diff(
    client: TestClient, db: Session, admin: User, project: Project, as_reader: dict[str, str]
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    # Published, so labelers may read both (test_labelers_read_only_published_versions).
    guidelines.publish_version(db, project.id, 1)
    guidelines.publish_version(db, project.id, 2)

    response = client.get(url(project, "/diff?from=1&to=2"), headers=as_reader)

    assert response.status_code == 200
    assert response.json() == {
        "project_id": project.id,
        "from_version": 1,
        "to_version": 2,
        "lines": [
            "--- version 1",
            "+++ version 2",
            "@@ -1,4 +1,4 @@",
            " # Rules",
            " ",
            " Be kind.",
            "-Be brief.",
            "+Be accurate.",
        ],
    }
    same = client.get(url(project, "/diff?from=2&to=2"), headers=as_reader)
    assert (same.status_code, same.json()["lines"]) == (200, [])


@pytest.mark.parametrize(
    ("query", "field"),
    [("?from=1", "to"), ("?to=1", "from"), ("?from=x&to=1", "from"), ("?from=0&to=1", "from")],
)
def test_diff_with_a_bad_query_is_422(
    client: TestClient, project: Project, as_admin: dict[str, str], query: str, field: str
) -> None:
    response = client.get(url(project, f"/diff{query}"), headers=as_admin)

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)


# --- not found ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", ""),
        ("GET", "/current"),
        ("GET", "/1"),
        ("GET", "/diff?from=1&to=2"),
        ("POST", ""),
        ("POST", "/1/publish"),
    ],
)
def test_unknown_project_is_404(
    client: TestClient, db: Session, as_admin: dict[str, str], method: str, rest: str
) -> None:
    before = db_state(db, TABLES)

    response = client.request(method, url(999_999, rest), headers=as_admin, json={"body": V1})

    assert response.status_code == 404
    assert response.json() == error("not_found", "no project with id 999999")
    assert db_state(db, TABLES) == before


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", "/3"),
        ("POST", "/3/publish"),
        ("GET", "/diff?from=1&to=3"),
        ("GET", "/diff?from=3&to=1"),
    ],
)
def test_unknown_version_is_404(
    client: TestClient,
    db: Session,
    admin: User,
    project: Project,
    as_admin: dict[str, str],
    method: str,
    rest: str,
) -> None:
    add(db, project, admin, V1)
    before = db_state(db, TABLES)

    response = client.request(method, url(project, rest), headers=as_admin)

    assert response.status_code == 404
    assert response.json() == error("not_found", f"project {project.id} has no guideline version 3")
    assert db_state(db, TABLES) == before


def test_a_version_that_is_not_a_number_is_422(
    client: TestClient, project: Project, as_admin: dict[str, str]
) -> None:
    response = client.get(url(project, "/latest"), headers=as_admin)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "version"


# --- who may do what ------------------------------------------------------------------------


def test_readers_cannot_save_or_publish(
    client: TestClient, db: Session, admin: User, project: Project, as_reader: dict[str, str]
) -> None:
    add(db, project, admin, V1)
    before = db_state(db, TABLES)

    saved = client.post(url(project), headers=as_reader, json={"body": V2})
    published = client.post(url(project, "/1/publish"), headers=as_reader)

    assert (saved.status_code, saved.json()) == (403, NEEDS_ADMIN)
    assert (published.status_code, published.json()) == (403, NEEDS_ADMIN)
    assert db_state(db, TABLES) == before
    assert stored(db, project, 1).published_at is None


def test_no_token_is_401(client: TestClient, db: Session, project: Project) -> None:
    before = db_state(db, TABLES)
    for method, rest in (("GET", ""), ("GET", "/current"), ("POST", ""), ("POST", "/1/publish")):
        response = client.request(method, url(project, rest), json={"body": V1})
        assert response.status_code == 401, (method, rest)
    assert db_state(db, TABLES) == before
