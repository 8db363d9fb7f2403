"""/api/v1 data browser: labels and prompts with filters, keyset cursors and a CSV."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API
from tests.browsing_world import World, build_world
from tests.conftest import bearer, make_token


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def test_labels_page_then_the_next(
    client: TestClient, world: World, as_researcher: dict[str, str]
) -> None:
    url = f"{API}/projects/{world.project.id}/labels"
    c = [comparison.id for comparison in world.comparisons]
    first = client.get(url, params={"limit": 3}, headers=as_researcher)
    assert first.status_code == 200
    body = first.json()
    assert [item["id"] for item in body["items"]] == [c[3], c[2], c[1]]
    assert body["next_cursor"] == c[1]
    rest = client.get(url, params={"cursor": c[1]}, headers=as_researcher).json()
    assert rest == {
        "items": [
            {
                "kind": "comparison",
                "id": c[0],
                "created_at": "2026-03-01T09:00:00Z",
                "task_id": world.tasks[0].id,
                "queue_id": world.queue.id,
                "queue_name": "Main",
                "labeler": "ada",
                "source": "labeler",
                "source_name": "",
                "prompt_id": world.tasks[0].prompt_id,
                "category": "other",
                "prompt_text": "Explain photosynthesis to a child.",
                "label_text": "",
                "flags": ["hallucination"],
                "guideline_version": 1,
                "gold": False,
                "time_spent_seconds": None,
                "task_agreement": None,
                "skip_reason": None,
            }
        ],
        "next_cursor": None,
    }


def test_labels_filters_and_search(
    client: TestClient, world: World, as_researcher: dict[str, str]
) -> None:
    url = f"{API}/projects/{world.project.id}/labels"
    c = [comparison.id for comparison in world.comparisons]

    def found(**params: object) -> list[int]:
        answer = client.get(url, params=params, headers=as_researcher)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert found(labeler_id=world.ada.id, since="2026-03-02") == [c[2]]
    # `until` includes its day.
    assert found(until="2026-03-01") == [c[1], c[0]]
    assert found(flag="hallucination", gold="false") == [c[0]]
    assert found(search="photosynthesis", queue_id=world.queue.id) == [c[1], c[0]]
    assert found(source="import", category="other") == [c[3]]


def test_bad_filters_are_422_naming_the_problem(
    client: TestClient, world: World, as_researcher: dict[str, str]
) -> None:
    url = f"{API}/projects/{world.project.id}/labels"
    cases = {
        "kind=pairs": "query.kind",
        "since=yesterday": "query.since",
        "cursor=0": "query.cursor",
        "queue=3": "query.queue",
        "search=a%00b": "query.search",
    }
    for query, location in cases.items():
        answer = client.get(f"{url}?{query}", headers=as_researcher)
        assert answer.status_code == 422, query
        assert answer.json()["error"]["problems"][0]["location"] == location
    backwards = client.get(
        url, params={"since": "2026-03-02", "until": "2026-03-01"}, headers=as_researcher
    )
    assert backwards.status_code == 422
    assert backwards.json()["error"]["message"] == "the 'to' day is before the 'from' day"
    demo_flag = client.get(
        url, params={"kind": "demonstration", "flag": "x"}, headers=as_researcher
    )
    assert demo_flag.json()["error"]["message"] == (
        "flags belong to comparisons; a demonstration has none"
    )


def test_labels_csv_holds_every_matching_label(
    client: TestClient, world: World, as_researcher: dict[str, str]
) -> None:
    answer = client.get(
        f"{API}/projects/{world.project.id}/labels.csv",
        params={"labeler_id": world.ada.id},
        headers=as_researcher,
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    lines = answer.text.splitlines()
    assert lines[0].startswith("kind,id,created_at,task_id,queue,labeler,")
    c = world.comparisons
    assert [line.split(",")[1] for line in lines[1:]] == [str(c[2].id), str(c[0].id)]


def test_prompt_search(client: TestClient, world: World, as_researcher: dict[str, str]) -> None:
    answer = client.get(
        f"{API}/projects/{world.project.id}/prompt-search",
        params={"search": "haiku"},
        headers=as_researcher,
    )
    assert answer.json() == {
        "items": [
            {
                "id": world.tasks[1].prompt_id,
                "created_at": answer.json()["items"][0]["created_at"],
                "category": "generation",
                "source": "test",
                "prompt_text": "Write a haiku about rain.",
                "responses": 2,
            }
        ],
        "next_cursor": None,
    }


def test_labelers_may_not_browse(
    client: TestClient, world: World, labeler: User, db: Session
) -> None:
    answer = client.get(
        f"{API}/projects/{world.project.id}/labels", headers=bearer(make_token(db, labeler))
    )
    assert answer.status_code == 403
