"""What one label costs, per project: the JSON API, and (at the end) the project form."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Project, User
from tests.api.helpers import API, Json, db_state, project_json
from tests.conftest import bearer, make_token, web_login
from tests.factories import make_queue

NEEDS_ADMIN = {
    "error": {"code": "permission_denied", "message": "this needs the admin role", "field": None}
}


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


def stored(db: Session, project_id: int) -> Project:
    db.rollback()
    project = db.get(Project, project_id)
    assert project is not None
    db.refresh(project)
    return project


def costs(project: Project) -> tuple[Decimal | None, Decimal | None]:
    return project.cost_per_demonstration, project.cost_per_comparison


def create(client: TestClient, headers: dict[str, str], **body: Any) -> Json:
    response = client.post(f"{API}/projects", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- the API --------------------------------------------------------------------------------


def test_costs_are_not_set_by_default(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    body = create(client, as_admin, name="Plain")

    assert (body["cost_per_demonstration"], body["cost_per_comparison"]) == (None, None)
    assert costs(stored(db, body["id"])) == (None, None)


@pytest.mark.parametrize(
    ("sent", "written", "kept"),
    [
        (1.5, "1.50", Decimal("1.50")),
        ("0.35", "0.35", Decimal("0.35")),
        (0, "0.00", Decimal("0.00")),
        ("-0", "0.00", Decimal("0.00")),
        ("1e1", "10.00", Decimal("10.00")),
        (" 2 ", "2.00", Decimal("2.00")),
        ("9999999999.99", "9999999999.99", Decimal("9999999999.99")),
    ],
)
def test_create_with_costs(
    client: TestClient,
    db: Session,
    as_admin: dict[str, str],
    sent: Any,
    written: str,
    kept: Decimal,
) -> None:
    body = create(
        client, as_admin, name="Paid", cost_per_demonstration=sent, cost_per_comparison="0.10"
    )

    project = stored(db, body["id"])
    assert (body["cost_per_demonstration"], body["cost_per_comparison"]) == (written, "0.10")
    assert costs(project) == (kept, Decimal("0.10"))
    assert body == project_json(project)
    read = client.get(f"{API}/projects/{body['id']}", headers=as_admin)
    assert read.json() == body


def test_update_sets_keeps_and_clears_costs(
    client: TestClient, db: Session, as_admin: dict[str, str]
) -> None:
    project_id = create(client, as_admin, name="Paid", cost_per_demonstration="2")["id"]
    path = f"{API}/projects/{project_id}"

    set_both = client.patch(path, headers=as_admin, json={"cost_per_comparison": 0.4})
    assert set_both.status_code == 200
    assert (set_both.json()["cost_per_demonstration"], set_both.json()["cost_per_comparison"]) == (
        "2.00",
        "0.40",
    )
    assert costs(stored(db, project_id)) == (Decimal("2.00"), Decimal("0.40"))

    # Leaving a cost out keeps it.
    renamed = client.patch(path, headers=as_admin, json={"name": "Renamed"})
    assert renamed.status_code == 200
    assert costs(stored(db, project_id)) == (Decimal("2.00"), Decimal("0.40"))

    # An explicit null clears it.
    cleared = client.patch(path, headers=as_admin, json={"cost_per_demonstration": None})
    assert cleared.status_code == 200
    assert cleared.json()["cost_per_demonstration"] is None
    assert cleared.json() == project_json(stored(db, project_id))
    assert costs(stored(db, project_id)) == (None, Decimal("0.40"))


BAD_COSTS = [
    (-1, "Input should be greater than or equal to 0"),
    ("-0.01", "Input should be greater than or equal to 0"),
    ("abc", "Input should be a valid decimal"),
    ("", "Input should be a valid decimal"),
    (1.234, "Decimal input should have no more than 2 decimal places"),
    ("NaN", "Input should be a finite number"),
    ("Infinity", "Input should be a finite number"),
    (True, "Decimal input should be an integer, float, string or Decimal object"),
    (
        "12345678901",
        "Decimal input should have no more than 10 digits before the decimal point",
    ),
]


@pytest.mark.parametrize("field", ["cost_per_demonstration", "cost_per_comparison"])
@pytest.mark.parametrize(("cost", "message"), BAD_COSTS)
def test_create_with_a_bad_cost_is_422(
    client: TestClient,
    db: Session,
    as_admin: dict[str, str],
    field: str,
    cost: Any,
    message: str,
) -> None:
    before = db_state(db)

    response = client.post(f"{API}/projects", headers=as_admin, json={"name": "X", field: cost})

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)
    assert [p["message"] for p in problem["problems"]] == [message]
    assert db_state(db) == before


@pytest.mark.parametrize(("cost", "message"), BAD_COSTS)
def test_update_with_a_bad_cost_is_422_and_keeps_the_old_one(
    client: TestClient, db: Session, as_admin: dict[str, str], cost: Any, message: str
) -> None:
    project_id = create(client, as_admin, name="Paid", cost_per_comparison="0.25")["id"]
    before = db_state(db)

    response = client.patch(
        f"{API}/projects/{project_id}",
        headers=as_admin,
        json={"name": "Changed too", "cost_per_comparison": cost},
    )

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["field"], [p["message"] for p in problem["problems"]]) == (
        "cost_per_comparison",
        [message],
    )
    assert db_state(db) == before
    assert (stored(db, project_id).name, costs(stored(db, project_id))) == (
        "Paid",
        (None, Decimal("0.25")),
    )


@pytest.mark.parametrize("role", ["labeler", "researcher"])
def test_only_admins_change_costs(
    client: TestClient, db: Session, as_admin: dict[str, str], role: str, request: Any
) -> None:
    project_id = create(client, as_admin, name="Paid", cost_per_comparison="0.25")["id"]
    # A queue open to all, so that labelers may read the project.
    project = db.get(Project, project_id)
    assert project is not None
    make_queue(db, project)
    db.commit()
    headers = bearer(make_token(db, request.getfixturevalue(role)))
    before = db_state(db)

    response = client.patch(
        f"{API}/projects/{project_id}", headers=headers, json={"cost_per_comparison": "0"}
    )
    read = client.get(f"{API}/projects/{project_id}", headers=headers)

    assert (response.status_code, response.json()) == (403, NEEDS_ADMIN)
    assert db_state(db) == before
    assert (read.status_code, read.json()["cost_per_comparison"]) == (200, "0.25")


# --- the project form (the same schema behind the web front door) ---------------------------


def form_value(page: str, name: str) -> str:
    found = re.search(rf'<input id="{name}" name="{name}" type="text" value="([^"]*)"', page)
    assert found, f"no field {name!r}"
    return html.unescape(found.group(1))


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(r'name="(\w+)"[^>]*>\s*<p class="field-error"[^>]*>(.*?)</p>', page)
    return {name: html.unescape(message) for name, message in found}


def shown_costs(page: str) -> tuple[str, str]:
    demonstration = re.search(r'data-testid="cost-per-demonstration">(.*?)</strong>', page)
    comparison = re.search(r'data-testid="cost-per-comparison">(.*?)</strong>', page)
    assert demonstration and comparison
    return demonstration.group(1), comparison.group(1)


@pytest.fixture
def admin_csrf(client: TestClient, admin: User) -> str:
    return web_login(client, admin.username)


def test_form_creates_with_costs_and_shows_them(
    client: TestClient, db: Session, admin_csrf: str
) -> None:
    blank = client.get("/projects/new").text
    assert form_value(blank, "cost_per_demonstration") == ""
    assert form_value(blank, "cost_per_comparison") == ""

    response = client.post(
        "/projects",
        data={
            "name": "Paid",
            "flags": "helpful: Helpful",
            "cost_per_demonstration": " 1.5 ",
            "cost_per_comparison": "",
            "csrf_token": admin_csrf,
        },
    )

    assert response.status_code == 303
    project_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert costs(stored(db, project_id)) == (Decimal("1.50"), None)
    assert shown_costs(client.get(response.headers["location"]).text) == ("1.50", "not set")


def test_form_edits_and_clears_costs(
    client: TestClient, db: Session, as_admin: dict[str, str], admin_csrf: str
) -> None:
    project_id = create(client, as_admin, name="Paid", cost_per_demonstration="3")["id"]
    edit = f"/projects/{project_id}/edit"
    assert form_value(client.get(edit).text, "cost_per_demonstration") == "3.00"

    response = client.post(
        edit,
        data={
            "name": "Paid",
            "flags": "helpful: Helpful",
            "cost_per_demonstration": "",
            "cost_per_comparison": "0.2",
            "csrf_token": admin_csrf,
        },
    )

    assert response.status_code == 303
    assert costs(stored(db, project_id)) == (None, Decimal("0.20"))
    assert shown_costs(client.get(f"/projects/{project_id}").text) == ("not set", "0.20")


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ("-1", "Input should be greater than or equal to 0"),
        ("ten", "Input should be a valid decimal"),
        ("0.001", "Decimal input should have no more than 2 decimal places"),
    ],
)
def test_form_refuses_a_bad_cost_and_changes_nothing(
    client: TestClient,
    db: Session,
    as_admin: dict[str, str],
    admin_csrf: str,
    cost: str,
    message: str,
) -> None:
    project_id = create(client, as_admin, name="Paid", cost_per_comparison="0.25")["id"]
    before = db_state(db)

    created = client.post(
        "/projects",
        data={"name": "New", "flags": "", "cost_per_demonstration": cost, "csrf_token": admin_csrf},
    )
    edited = client.post(
        f"/projects/{project_id}/edit",
        data={
            "name": "Renamed",
            "flags": "",
            "cost_per_comparison": cost,
            "csrf_token": admin_csrf,
        },
    )

    assert created.status_code == edited.status_code == 422
    assert field_errors(created.text) == {"cost_per_demonstration": message}
    assert field_errors(edited.text) == {"cost_per_comparison": message}
    assert form_value(created.text, "cost_per_demonstration") == cost
    assert form_value(edited.text, "cost_per_comparison") == cost
    assert db_state(db) == before
