"""/projects/{id}/data: the data browser page and its CSV."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.browsing_world import World, build_world
from tests.conftest import web_login
from tests.factories import make_project


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def row_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-testid="data-row" data-id="(\d+)"', page)]


def next_link(page: str) -> str | None:
    found = re.search(r'href="([^"]+)" data-testid="next-page"', page)
    return found.group(1).replace("&amp;", "&") if found else None


def test_comparisons_newest_first_with_readable_text(
    client: TestClient, world: World, researcher: User
) -> None:
    web_login(client, researcher.username)
    answer = client.get(f"/projects/{world.project.id}/data")
    assert answer.status_code == 200
    c = [comparison.id for comparison in world.comparisons]
    assert row_ids(answer.text) == [c[3], c[2], c[1], c[0]]
    assert "Explain photosynthesis to a child." in answer.text
    assert "both fine" in answer.text
    # No task page in this tree yet: the task id is shown as text.
    assert f"task {world.tasks[0].id}" in answer.text
    assert next_link(answer.text) is None


def test_filters_are_a_bookmarkable_get_and_pages_follow(
    client: TestClient, world: World, researcher: User
) -> None:
    web_login(client, researcher.username)
    c = [comparison.id for comparison in world.comparisons]
    base = f"/projects/{world.project.id}/data"
    filtered = client.get(base, params={"labeler_id": world.ada.id, "queue_id": "", "gold": ""})
    assert row_ids(filtered.text) == [c[2], c[0]]
    searched = client.get(base, params={"search": "photosynthesis", "since": "2026-03-01"})
    assert row_ids(searched.text) == [c[1], c[0]]
    # A page of one (cursor from the keyset) then the next, keeping the filters.
    first = client.get(base, params={"labeler_id": world.ada.id, "cursor": c[3]})
    assert row_ids(first.text) == [c[2], c[0]]
    assert next_link(first.text) is None
    csv = re.search(r'href="([^"]+)" data-testid="data-csv"', filtered.text)
    assert csv is not None
    download = client.get(csv.group(1).replace("&amp;", "&"))
    assert download.status_code == 200
    assert [line.split(",")[1] for line in download.text.splitlines()[1:]] == [
        str(c[2]),
        str(c[0]),
    ]


def test_prompts_view(client: TestClient, world: World, admin: User) -> None:
    web_login(client, admin.username)
    answer = client.get(
        f"/projects/{world.project.id}/data", params={"view": "prompts", "search": "haiku"}
    )
    assert row_ids(answer.text) == [world.tasks[1].prompt_id]
    assert "Write a haiku about rain." in answer.text


def test_a_bad_filter_says_which(client: TestClient, world: World, admin: User) -> None:
    web_login(client, admin.username)
    answer = client.get(f"/projects/{world.project.id}/data", params={"since": "soon"})
    assert answer.status_code == 422
    assert "from: &#39;soon&#39; is not a valid value" in answer.text
    assert row_ids(answer.text) == []


def test_empty_project_says_what_to_do(client: TestClient, db: Session, admin: User) -> None:
    project = make_project(db, "Empty")
    db.commit()
    web_login(client, admin.username)
    answer = client.get(f"/projects/{project.id}/data")
    assert "No comparisons yet" in answer.text


def test_labelers_may_not_see_it(client: TestClient, world: World, labeler: User) -> None:
    web_login(client, labeler.username)
    answer = client.get(f"/projects/{world.project.id}/data", follow_redirects=False)
    assert answer.status_code == 403
