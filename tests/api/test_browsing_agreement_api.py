"""/api/v1 data browser: "agreement below x", skips and prompts a labeler skipped."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API
from tests.browsing_world import World, build_world
from tests.conftest import bearer, make_token
from tests.skips_world import Extras, add_disagreement_and_skips


@pytest.fixture
def world(db: Session) -> tuple[World, Extras]:
    world = build_world(db)
    return world, add_disagreement_and_skips(db, world)


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


def test_agreement_below_and_the_rows_figure(
    client: TestClient, world: tuple[World, Extras], as_admin: dict[str, str]
) -> None:
    found, extras = world
    answer = client.get(
        f"{API}/projects/{found.project.id}/labels",
        params={"agreement_below": 0.5},
        headers=as_admin,
    )
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [(item["id"], item["task_agreement"]) for item in items] == [
        (extras.disagreeing.id, 0.0),
        (found.comparisons[2].id, 0.0),
    ]


def test_skips_with_reason_and_note(
    client: TestClient, world: tuple[World, Extras], as_admin: dict[str, str]
) -> None:
    found, extras = world
    answer = client.get(
        f"{API}/projects/{found.project.id}/labels",
        params={"kind": "skip", "skip_reason": "unclear_prompt"},
        headers=as_admin,
    )
    assert answer.status_code == 200
    [item] = answer.json()["items"]
    assert (item["kind"], item["id"], item["labeler"], item["task_id"]) == (
        "skip",
        extras.skips[0].id,
        "ada",
        found.tasks[1].id,
    )
    assert (item["skip_reason"], item["label_text"], item["time_spent_seconds"]) == (
        "unclear_prompt",
        "What is asked here?",
        40.0,
    )
    csv = client.get(
        f"{API}/projects/{found.project.id}/labels.csv", params={"kind": "skip"}, headers=as_admin
    )
    assert csv.headers["content-disposition"].endswith(f'project-{found.project.id}-skips.csv"')
    assert [line.split(",")[-1] for line in csv.text.splitlines()] == [
        "skip_reason",
        "broken_task",
        "unclear_prompt",
    ]


def test_prompts_a_labeler_skipped(
    client: TestClient, world: tuple[World, Extras], as_admin: dict[str, str]
) -> None:
    found, _ = world
    answer = client.get(
        f"{API}/projects/{found.project.id}/prompt-search",
        params={"skipped": "false"},
        headers=as_admin,
    )
    assert [item["id"] for item in answer.json()["items"]] == [found.tasks[0].prompt_id]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"agreement_below": 2}, 422, "query.agreement_below"),
        ({"agreement_below": "low"}, 422, "query.agreement_below"),
        ({"skip_reason": "bored", "kind": "skip"}, 422, "query.skip_reason"),
        ({"kind": "demonstration", "agreement_below": 0.5}, 422, "agreement_below"),
        ({"kind": "skip", "guideline_version": 1}, 422, "guideline_version"),
        ({"skip_reason": "other"}, 422, "skip_reason"),
    ],
)
def test_bad_values_are_422_naming_the_field(
    client: TestClient,
    world: tuple[World, Extras],
    as_admin: dict[str, str],
    query: dict[str, object],
    status: int,
    field: str,
) -> None:
    found, _ = world
    answer = client.get(f"{API}/projects/{found.project.id}/labels", params=query, headers=as_admin)
    assert answer.status_code == status
    error = answer.json()["error"]
    named = error["problems"][0]["location"] if field.startswith("query.") else error["field"]
    assert named == field
