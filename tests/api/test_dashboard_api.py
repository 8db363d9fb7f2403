"""/api/v1 project dashboard: the whole dashboard and its CSVs for admins and researchers, the
per-labeler CSV (it names people) for admins only.

The figures are worked out by hand in tests/services/test_dashboard.py; progress is measured
now, long after the world's leases (2024) ran out."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API, db_state, error
from tests.conftest import bearer, make_token
from tests.services.test_dashboard import (
    DashboardWorld,
    build_dashboard_world,
    expected_labeler_rows,
)

NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")
STAFF_CSVS = ("queues", "agreement-over-time", "categories", "flags", "cost")


@pytest.fixture
def world(db: Session) -> DashboardWorld:
    return build_dashboard_world(db)


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


@pytest.fixture
def as_labeler(db: Session, labeler: User) -> dict[str, str]:
    return bearer(make_token(db, labeler))


def progress(done: int, left: int, tasks: int) -> dict[str, object]:
    return {
        "tasks": tasks,
        "required": 6,
        "done": done,
        "in_progress": 0,
        "left": left,
        "per_hour": 0,
        "eta_seconds": None,
    }


def category(name: str, prompts: int, demos: int, comparisons: int) -> dict[str, object]:
    return {
        "category": name,
        "prompts": prompts,
        "demonstrations": demos,
        "comparisons": comparisons,
        "labels": demos + comparisons,
    }


def flag(
    key: str, label: str, items: int, comparisons: int, in_schema: bool = True
) -> dict[str, object]:
    return {
        "key": key,
        "label": label,
        "in_schema": in_schema,
        "items": items,
        "comparisons": comparisons,
    }


@pytest.mark.parametrize("who", ["as_admin", "as_researcher"])
def test_staff_read_the_whole_dashboard(
    client: TestClient, world: DashboardWorld, who: str, request: pytest.FixtureRequest
) -> None:
    response = client.get(
        f"{API}/projects/{world.project.id}/dashboard", headers=request.getfixturevalue(who)
    )

    assert response.status_code == 200
    assert response.json() == {
        "project_id": world.project.id,
        "queues": [
            {
                "queue_id": world.demos.id,
                "name": "demos",
                "kind": "demonstration",
                "is_paused": False,
                "progress": progress(done=3, left=3, tasks=3),
            },
            {
                "queue_id": world.pairs.id,
                "name": "pairs",
                "kind": "comparison",
                "is_paused": False,
                "progress": progress(done=4, left=2, tasks=2),
            },
        ],
        "pairwise_agreement": 2 / 3,
        "agreement_over_time": [
            {
                "start": "2024-05-01",
                "pairwise_agreement": 1.0,
                "agreeing_pairs": 2,
                "labeler_pairs": 2,
            },
            {
                "start": "2024-05-02",
                "pairwise_agreement": 0.0,
                "agreeing_pairs": 0,
                "labeler_pairs": 1,
            },
        ],
        "labelers": expected_labeler_rows(world),
        "categories": [
            category("generation", 2, 3, 0),
            category("open_qa", 1, 0, 0),
            category("brainstorming", 1, 0, 3),
            category("chat", 1, 0, 2),
            category("rewrite", 0, 0, 0),
            category("summarization", 1, 0, 0),
            category("classification", 0, 0, 0),
            category("closed_qa", 0, 0, 0),
            category("extraction", 0, 0, 0),
            category("other", 0, 0, 0),
        ],
        "flags": [
            flag("fails_instruction", "Fails to follow the instruction", 2, 1),
            flag("hallucination", "Hallucination", 3, 2),
            flag("harmful_advice", "@risk: harmful advice", 1, 1),
            flag("private_information", "Contains private information", 0, 0),
            flag("legacy_flag", "legacy_flag", 1, 1, in_schema=False),
        ],
        # Money travels as strings, like the project's costs.
        "cost": {
            "cost_per_demonstration": "2.50",
            "cost_per_comparison": "0.40",
            "demonstrations": 3,
            "comparisons": 5,
            "demonstration_spend": "7.50",
            "comparison_spend": "2.00",
            "spend_to_date": "9.50",
            "usable_pairs": 7,
            "cost_per_usable_pair": "0.2857",
        },
    }


def test_unset_costs_come_back_as_null(
    client: TestClient, db: Session, world: DashboardWorld, as_researcher: dict[str, str]
) -> None:
    world.project.cost_per_demonstration = None
    world.project.cost_per_comparison = None
    db.commit()

    response = client.get(f"{API}/projects/{world.project.id}/dashboard", headers=as_researcher)

    assert response.json()["cost"] == {
        "cost_per_demonstration": None,
        "cost_per_comparison": None,
        "demonstrations": 3,
        "comparisons": 5,
        "demonstration_spend": None,
        "comparison_spend": None,
        "spend_to_date": None,
        "usable_pairs": 7,
        "cost_per_usable_pair": None,
    }


# --- CSV --------------------------------------------------------------------------------------


def test_admin_downloads_the_labelers_csv(
    client: TestClient, world: DashboardWorld, as_admin: dict[str, str]
) -> None:
    response = client.get(
        f"{API}/projects/{world.project.id}/dashboard/labelers.csv", headers=as_admin
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="project-{world.project.id}-labelers.csv"'
    )
    assert response.text.splitlines() == [
        "labeler_id,username,demonstrations,comparisons,labels,median_seconds,submitted,"
        "skipped,skip_rate,pairwise_agreement,agreement_pairs,gold_pairs,gold_accuracy",
        f"{world.ann.id},ann,2,1,3,45.0,3,2,0.4,1.0,2,0,",
        f"{world.bob.id},bob,1,2,3,40.0,3,1,0.25,{2 / 3},3,1,1.0",
        f"{world.cat.id},cat,0,2,2,70.0,2,0,0.0,0.0,1,1,0.0",
    ]


def test_researcher_downloads_the_staff_csvs(
    client: TestClient, world: DashboardWorld, as_researcher: dict[str, str]
) -> None:
    base = f"{API}/projects/{world.project.id}/dashboard"

    found = {name: client.get(f"{base}/{name}.csv", headers=as_researcher) for name in STAFF_CSVS}

    assert {name: response.status_code for name, response in found.items()} == dict.fromkeys(
        STAFF_CSVS, 200
    )
    assert found["flags"].text.splitlines()[3] == "harmful_advice,'@risk: harmful advice,true,1,1"
    assert found["categories"].text.splitlines()[4] == "chat,1,0,2,2"
    assert found["cost"].text.splitlines()[-1] == "cost_per_usable_pair,0.2857"
    assert found["queues"].text.splitlines()[2] == (
        f"{world.pairs.id},pairs,comparison,false,2,6,4,0,2,0,"
    )
    assert found["agreement-over-time"].text.splitlines()[1:] == [
        "2024-05-01,1.0,2,2",
        "2024-05-02,0.0,0,1",
    ]


def test_researcher_may_not_download_the_labelers_csv(
    client: TestClient, world: DashboardWorld, as_researcher: dict[str, str]
) -> None:
    response = client.get(
        f"{API}/projects/{world.project.id}/dashboard/labelers.csv", headers=as_researcher
    )

    assert (response.status_code, response.json()) == (403, NEEDS_ADMIN)


# --- who may, and what is not there -----------------------------------------------------------


def test_labeler_and_visitor_are_refused_and_nothing_changes(
    client: TestClient, db: Session, world: DashboardWorld, as_labeler: dict[str, str]
) -> None:
    before = db_state(db)
    base = f"{API}/projects/{world.project.id}/dashboard"
    paths = [base, f"{base}/labelers.csv"] + [f"{base}/{name}.csv" for name in STAFF_CSVS]

    as_labeler_answers = [client.get(path, headers=as_labeler) for path in paths]
    anonymous = [client.get(path) for path in paths]

    assert [(r.status_code, r.json()) for r in as_labeler_answers] == [
        (403, NEEDS_STAFF),
        (403, NEEDS_ADMIN),
    ] + [(403, NEEDS_STAFF)] * len(STAFF_CSVS)
    assert {r.status_code for r in anonymous} == {401}
    assert db_state(db) == before


@pytest.mark.parametrize("project_id", [999_999, 2**63])
def test_unknown_project_is_404(
    client: TestClient, as_admin: dict[str, str], project_id: int
) -> None:
    base = f"{API}/projects/{project_id}/dashboard"
    paths = [base, f"{base}/labelers.csv"] + [f"{base}/{name}.csv" for name in STAFF_CSVS]

    answers = [client.get(path, headers=as_admin) for path in paths]

    assert [(r.status_code, r.json()) for r in answers] == [
        (404, error("not_found", f"no project with id {project_id}"))
    ] * len(paths)
