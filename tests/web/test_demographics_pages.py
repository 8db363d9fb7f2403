"""Demographics: everyone edits their own answers at /account/profile; admins see only totals
at /admin/demographics (and GET /api/v1/demographics, tested at the end)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Base, LabelerProfile, Role, User
from app.schemas.demographics import AGE_RANGES, GENDERS, ProfileUpdate
from app.services import demographics
from tests.conftest import bearer, make_token, make_user, web_login

NO_ANSWERS = {
    "age_range": "",
    "gender": "",
    "region": "",
    "education": "",
    "first_language": "",
}

# --- helpers --------------------------------------------------------------------------------


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    db.expire_all()
    return {
        table.name: [
            tuple(row) for row in db.execute(table.select().order_by(*table.primary_key.columns))
        ]
        for table in Base.metadata.sorted_tables
    }


def notice(page: str) -> str | None:
    found = re.findall(r'data-testid="notice">(.*?)</p>', page)
    return html.unescape(found[0]) if found else None


def error_message(page: str) -> str:
    found = re.findall(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return html.unescape(found[0])


def field_errors(page: str) -> dict[str, str]:
    """{field: message}, keyed by the select or input just above each field error."""
    select_or_input = r'<(?:select|input) id="(\w+)"(?:[^>]*>\s*(?:<option[^>]*>[^<]*</option>\s*)*</select>|[^>]*>)'  # noqa: E501
    found = re.findall(select_or_input + r'\s*<p class="field-error"[^>]*>(.*?)</p>', page)
    return {name: html.unescape(message) for name, message in found}


def shown_answers(page: str) -> dict[str, str]:
    """What the profile form holds: the selected option of each select, each input's value."""
    found: dict[str, str] = {}
    for name, options in re.findall(r'<select id="(\w+)" name="\w+">(.*?)</select>', page, re.S):
        selected = re.search(r'<option value="([^"]*)" selected>', options)
        found[name] = html.unescape(selected.group(1)) if selected else "?"
    for name, value in re.findall(
        r'<input id="(\w+)" name="\w+" type="text" value="([^"]*)"', page
    ):
        found[name] = html.unescape(value)
    return found


def table_of(page: str, field: str) -> list[tuple[str, int]]:
    table = re.search(rf'data-testid="demographics-{field}">(.*?)</table>', page, re.S)
    assert table, field
    rows = re.findall(r"<tr><td>(.*?)</td><td>(\d+)</td></tr>", table.group(1))
    return [(html.unescape(value), int(count)) for value, count in rows]


def stored(db: Session, user: User) -> tuple[str | None, ...] | None:
    db.expire_all()
    profile = db.get(LabelerProfile, user.id)
    if profile is None:
        return None
    return (
        profile.age_range,
        profile.gender,
        profile.region,
        profile.education,
        profile.first_language,
    )


@pytest.fixture
def labeler_csrf(client: TestClient, labeler: User) -> str:
    return web_login(client, labeler.username)


# --- one's own answers ----------------------------------------------------------------------


def test_profile_form_starts_empty_and_is_not_cached(client: TestClient, labeler_csrf: str) -> None:
    response = client.get("/account/profile")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert shown_answers(response.text) == NO_ANSWERS
    for option in (*AGE_RANGES, *GENDERS):
        assert f'<option value="{option}" >{option}</option>' in response.text


def test_saving_answers(client: TestClient, db: Session, labeler: User, labeler_csrf: str) -> None:
    answers = {
        "age_range": "25-34",
        "gender": "prefer not to say",
        "region": "  East   Africa ",
        "education": "master's degree",
        "first_language": "Swahili",
    }

    response = client.post("/account/profile", data={**answers, "csrf_token": labeler_csrf})

    assert response.status_code == 303
    assert response.headers["location"] == "/account/profile"
    assert stored(db, labeler) == (
        "25-34",
        "prefer not to say",
        "East Africa",
        "master's degree",
        "Swahili",
    )
    page = client.get("/account/profile").text
    assert notice(page) == "Saved your answers."
    assert shown_answers(page) == {**answers, "region": "East Africa"}


def test_clearing_answers_deletes_them(
    client: TestClient, db: Session, labeler: User, labeler_csrf: str
) -> None:
    demographics.save_own_profile(db, labeler, ProfileUpdate(age_range="18-24", region="Peru"))

    response = client.post("/account/profile", data={"csrf_token": labeler_csrf})

    assert response.status_code == 303
    assert stored(db, labeler) is None
    page = client.get("/account/profile").text
    assert notice(page) == "Your answers are cleared."
    assert shown_answers(page) == NO_ANSWERS


@pytest.mark.parametrize(
    ("answers", "errors"),
    [
        ({"age_range": "12"}, {"age_range": "choose one of: " + ", ".join(AGE_RANGES)}),
        ({"gender": "robot"}, {"gender": "choose one of: " + ", ".join(GENDERS)}),
        ({"region": "r" * 65}, {"region": "at most 64 characters"}),
        ({"first_language": "l" * 65}, {"first_language": "at most 64 characters"}),
    ],
    ids=["age", "gender", "region", "language"],
)
def test_invalid_answer_is_422_and_changes_nothing(
    client: TestClient,
    db: Session,
    labeler: User,
    labeler_csrf: str,
    answers: dict[str, str],
    errors: dict[str, str],
) -> None:
    demographics.save_own_profile(db, labeler, ProfileUpdate(education="high school"))
    before = snapshot(db)

    response = client.post(
        "/account/profile",
        data={"education": "doctorate", **answers, "csrf_token": labeler_csrf},
    )

    assert response.status_code == 422
    assert field_errors(response.text) == errors
    assert shown_answers(response.text)["education"] == "doctorate"
    assert snapshot(db) == before
    assert stored(db, labeler) == (None, None, None, "high school", None)


def test_every_role_may_answer(client: TestClient, db: Session, admin: User) -> None:
    csrf = web_login(client, admin.username)

    response = client.post("/account/profile", data={"gender": "man", "csrf_token": csrf})

    assert response.status_code == 303
    assert stored(db, admin) == (None, "man", None, None, None)


def test_profile_needs_a_login_and_the_csrf_token(
    client: TestClient, db: Session, labeler: User
) -> None:
    anonymous = client.get("/account/profile")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Faccount%2Fprofile"

    web_login(client, labeler.username)
    before = snapshot(db)
    forged = client.post("/account/profile", data={"gender": "man"})

    assert forged.status_code == 403
    assert snapshot(db) == before


# --- the aggregate for admins ---------------------------------------------------------------


def answer(db: Session, username: str, **answers: str) -> User:
    user = make_user(db, username)
    demographics.save_own_profile(db, user, ProfileUpdate(**answers))
    return user


@pytest.fixture
def answered(db: Session) -> None:
    """Four labelers in 25-34 and one 65 or older; the one must not be identifiable."""
    for number in range(4):
        answer(db, f"young{number}", age_range="25-34", region="Kenya")
    answer(db, "elder", age_range="65 or older", region="Atlantis")
    make_user(db, "quiet")


def test_admin_sees_only_k_anonymous_totals(
    client: TestClient, admin: User, answered: None
) -> None:
    web_login(client, admin.username)

    response = client.get("/admin/demographics")

    assert response.status_code == 200
    assert "over the 6 active labelers" in response.text
    assert table_of(response.text, "age_range") == [
        ("25-34", 4),
        ("other (fewer than 3)", 1),
        ("not given", 1),
    ]
    assert table_of(response.text, "region") == [
        ("Kenya", 4),
        ("other (fewer than 3)", 1),
        ("not given", 1),
    ]
    assert table_of(response.text, "gender") == [
        ("other (fewer than 3)", 0),
        ("not given", 6),
    ]
    # Neither the rare answers nor anybody's name appear.
    for secret in ("65 or older", "Atlantis", "elder", "young0", "quiet"):
        assert secret not in response.text


@pytest.mark.parametrize("role", [Role.labeler, Role.researcher])
def test_non_admins_get_403_on_the_totals(
    client: TestClient, db: Session, answered: None, role: Role
) -> None:
    make_user(db, "asker", role)
    web_login(client, "asker")

    response = client.get("/admin/demographics")

    assert response.status_code == 403
    assert error_message(response.text) == "this needs the admin role"
    assert "Kenya" not in response.text


# --- the JSON aggregate ---------------------------------------------------------------------


def test_api_gives_admins_the_same_totals(
    client: TestClient, db: Session, admin: User, answered: None
) -> None:
    response = client.get("/api/v1/demographics", headers=bearer(make_token(db, admin)))

    assert response.status_code == 200
    other, not_given = "other (fewer than 3)", "not given"
    assert response.json() == {
        "population": 6,
        "min_group_size": 3,
        "fields": [
            {
                "field": "age_range",
                "label": "Age",
                "counts": [
                    {"value": "25-34", "count": 4},
                    {"value": other, "count": 1},
                    {"value": not_given, "count": 1},
                ],
            },
            {
                "field": "gender",
                "label": "Gender",
                "counts": [{"value": other, "count": 0}, {"value": not_given, "count": 6}],
            },
            {
                "field": "region",
                "label": "Region",
                "counts": [
                    {"value": "Kenya", "count": 4},
                    {"value": other, "count": 1},
                    {"value": not_given, "count": 1},
                ],
            },
            {
                "field": "education",
                "label": "Education",
                "counts": [{"value": other, "count": 0}, {"value": not_given, "count": 6}],
            },
            {
                "field": "first_language",
                "label": "First language",
                "counts": [{"value": other, "count": 0}, {"value": not_given, "count": 6}],
            },
        ],
    }


@pytest.mark.parametrize("role", [Role.labeler, Role.researcher])
def test_api_refuses_non_admins(client: TestClient, db: Session, role: Role) -> None:
    headers = bearer(make_token(db, make_user(db, "asker", role)))

    response = client.get("/api/v1/demographics", headers=headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert client.get("/api/v1/demographics").status_code == 401


def test_no_api_route_exposes_one_persons_answers(client: TestClient, admin: User) -> None:
    web_login(client, admin.username)
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert [path for path in paths if "demographic" in path or "profile" in path] == [
        "/api/v1/demographics"
    ]
