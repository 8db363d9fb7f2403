"""/api/v1 agreement routes: figures and consensus for admins and researchers, CSV for admins.

The figures themselves are worked out by hand in tests/services/agreement/world.py."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from pytest import approx
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token
from tests.services.agreement.test_metrics import direct_alpha
from tests.services.agreement.test_service import figures, labeler, pair
from tests.services.agreement.world import World, build_world, make_project

SQRT6 = math.sqrt(6)
NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


@pytest.fixture
def as_labeler(db: Session, labeler: User) -> dict[str, str]:
    return bearer(make_token(db, labeler))


def routes(world: World) -> dict[str, str]:
    return {
        "report": f"{API}/projects/{world.project.id}/agreement",
        "csv": f"{API}/projects/{world.project.id}/agreement/labelers.csv",
        "consensus": f"{API}/tasks/{world.t3.id}/consensus",
    }


# --- figures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["as_admin", "as_researcher"])
def test_staff_read_the_project_agreement(
    client: TestClient, world: World, who: str, request: pytest.FixtureRequest
) -> None:
    response = client.get(routes(world)["report"], headers=request.getfixturevalue(who))

    assert response.status_code == 200
    body = response.json()
    assert body["project_id"] == world.project.id
    assert (body["queue_id"], body["guideline_version_id"]) == (None, None)
    assert body["overall"] == figures(
        8, 4, 10, 27, 11, direct_alpha(slice(None)), (-2 + 2 / SQRT6) / 7, 7
    )
    assert [(q["queue_name"], q["agreeing_pairs"], q["labeler_pairs"]) for q in body["queues"]] == [
        ("chat", 8, 25),
        ("gold", 2, 2),
    ]
    assert [
        (v["version"], v["agreeing_pairs"], v["labeler_pairs"]) for v in body["guideline_versions"]
    ] == [(1, 5, 16), (2, 2, 5)]
    assert body["labelers"] == [
        labeler(world.ann, 2, 9, 17, 7, 289 / 729),
        labeler(world.bob, 2, 7, 12, 7, 289 / 594, gold=(3, 3)),
        labeler(world.cat, 2, 5, 8, 5, 235 / 486, gold=(2, 3)),
        labeler(world.dan, 2, 9, 17, 1, 127 / 729),
    ]


def test_filters_by_queue_and_guideline_version(
    client: TestClient, world: World, as_admin: dict[str, str]
) -> None:
    gold = client.get(
        routes(world)["report"], headers=as_admin, params={"queue_id": world.gold.id}
    ).json()
    v2 = client.get(
        routes(world)["report"], headers=as_admin, params={"guideline_version_id": world.v2.id}
    ).json()

    assert gold["queue_id"] == world.gold.id
    assert gold["overall"] == figures(2, 2, 2, 2, 2, direct_alpha(slice(7, 10)), 2 / SQRT6, 1)
    assert v2["guideline_version_id"] == world.v2.id
    assert (v2["overall"]["agreeing_pairs"], v2["overall"]["labeler_pairs"]) == (2, 5)
    assert v2["overall"]["pairwise_agreement"] == approx(2 / 5)


def test_project_without_comparisons_has_n_0_and_no_figures(
    client: TestClient, db: Session, as_researcher: dict[str, str]
) -> None:
    project = make_project(db, "Quiet")
    db.commit()

    response = client.get(f"{API}/projects/{project.id}/agreement", headers=as_researcher)

    assert response.status_code == 200
    assert response.json() == {
        "project_id": project.id,
        "queue_id": None,
        "guideline_version_id": None,
        "overall": figures(0, 0, 0, 0, 0, None, None, 0),
        "queues": [],
        "guideline_versions": [],
        "labelers": [],
    }


# --- consensus --------------------------------------------------------------------------------


def test_task_consensus(client: TestClient, world: World, as_researcher: dict[str, str]) -> None:
    r = world.r

    response = client.get(routes(world)["consensus"], headers=as_researcher)

    assert response.status_code == 200
    assert response.json() == {
        "task_id": world.t3.id,
        "comparisons": 2,
        "ranking": [[r[8]], [r[9]], [r[10]]],
        "support": 1.0,
        "pairs": [pair(r[8], r[9], 2, 1.0), pair(r[8], r[10], 2, 1.0), pair(r[9], r[10], 1, 1.0)],
    }


def test_consensus_of_a_split_task_names_its_support(
    client: TestClient, world: World, as_admin: dict[str, str]
) -> None:
    r = world.r
    wa, wc, wd = 289 / 729, 235 / 486, 127 / 729

    body = client.get(f"{API}/tasks/{world.t2.id}/consensus", headers=as_admin).json()

    assert body["ranking"] == [[r[6]], [r[5]], [r[7]]]
    assert body["pairs"][0] == pair(r[6], r[5], 3, (wc + wd) / (wa + wc + wd))


# --- CSV --------------------------------------------------------------------------------------


def test_admin_downloads_the_labeler_table_as_csv(
    client: TestClient, world: World, as_admin: dict[str, str]
) -> None:
    response = client.get(
        routes(world)["csv"], headers=as_admin, params={"queue_id": world.gold.id}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="project-{world.project.id}-labeler-agreement.csv"'
    )
    assert response.text == (
        "labeler_id,username,comparisons,response_pairs,labeler_pairs,agreeing_pairs,"
        "pairwise_agreement,reliability,gold_pairs,gold_correct,gold_accuracy\n"
        f"{world.bob.id},bob,1,2,2,2,1.0,1.0,3,3,1.0\n"
        f"{world.cat.id},cat,1,2,2,2,1.0,1.0,3,2,{2 / 3!r}\n"
    )


# --- who may ----------------------------------------------------------------------------------


def test_labeler_gets_403_on_every_agreement_route(
    client: TestClient, world: World, as_labeler: dict[str, str]
) -> None:
    found = {
        name: (response.status_code, response.json())
        for name, path in routes(world).items()
        for response in [client.get(path, headers=as_labeler)]
    }

    assert found == {
        "report": (403, NEEDS_STAFF),
        "csv": (403, NEEDS_ADMIN),
        "consensus": (403, NEEDS_STAFF),
    }


def test_researcher_gets_403_on_the_csv(
    client: TestClient, world: World, as_researcher: dict[str, str]
) -> None:
    response = client.get(routes(world)["csv"], headers=as_researcher)

    assert (response.status_code, response.json()) == (403, NEEDS_ADMIN)


def test_no_token_gets_401_on_every_agreement_route(client: TestClient, world: World) -> None:
    for path in routes(world).values():
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


# --- not found and bad requests ---------------------------------------------------------------


def test_unknown_project_task_queue_or_version_is_404(
    client: TestClient, world: World, as_admin: dict[str, str]
) -> None:
    project = world.project.id
    answers = [
        client.get(f"{API}/projects/999999/agreement", headers=as_admin),
        client.get(f"{API}/projects/999999/agreement/labelers.csv", headers=as_admin),
        client.get(f"{API}/tasks/999999/consensus", headers=as_admin),
        client.get(
            f"{API}/projects/{world.other.id}/agreement",
            headers=as_admin,
            params={"queue_id": world.chat.id},
        ),
        client.get(
            f"{API}/projects/{project}/agreement",
            headers=as_admin,
            params={"guideline_version_id": 999999},
        ),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [
        (404, error("not_found", "no project with id 999999")),
        (404, error("not_found", "no project with id 999999")),
        (404, error("not_found", "no task with id 999999")),
        (
            404,
            error(
                "not_found",
                f"no queue with id {world.chat.id} in project {world.other.id}",
                "queue_id",
            ),
        ),
        (
            404,
            error(
                "not_found",
                f"no guideline version with id 999999 in project {project}",
                "guideline_version_id",
            ),
        ),
    ]


def test_a_filter_that_is_no_number_is_422(
    client: TestClient, world: World, as_admin: dict[str, str]
) -> None:
    response = client.get(routes(world)["report"], headers=as_admin, params={"queue_id": "chat"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["field"] == "queue_id"
