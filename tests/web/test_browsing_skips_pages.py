"""/projects/{id}/data: the agreement filter and column, the skips tab, prompts skipped, and
the review link of an imported comparison."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, LabelReview, LabelSource, Response, User
from tests.browsing_world import World, build_world
from tests.conftest import csrf_from, web_login
from tests.skips_world import Extras, add_disagreement_and_skips


@pytest.fixture
def world(db: Session) -> tuple[World, Extras]:
    world = build_world(db)
    return world, add_disagreement_and_skips(db, world)


def row_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-testid="data-row" data-id="(\d+)"', page)]


def test_agreement_below_filters_and_each_row_shows_its_tasks_figure(
    client: TestClient, world: tuple[World, Extras], admin: User
) -> None:
    found, extras = world
    web_login(client, admin.username)
    base = f"/projects/{found.project.id}/data"
    every = client.get(base)
    assert re.findall(r'data-testid="agreement">([^<]*)<', every.text) == [
        "0%",
        "",
        "0%",
        "100%",
        "100%",
    ]
    low = client.get(base, params={"agreement_below": "0.5"})
    assert row_ids(low.text) == [extras.disagreeing.id, found.comparisons[2].id]
    # A percentage reads as well; the field keeps what was typed.
    percent = client.get(base, params={"agreement_below": "50%"})
    assert row_ids(percent.text) == row_ids(low.text)
    assert 'value="50%"' in percent.text
    csv = re.search(r'href="([^"]+)" data-testid="data-csv"', low.text)
    assert csv is not None
    download = client.get(csv.group(1).replace("&amp;", "&"))
    assert [line.split(",")[1] for line in download.text.splitlines()[1:]] == [
        str(extras.disagreeing.id),
        str(found.comparisons[2].id),
    ]


def test_a_bad_agreement_says_which_field(
    client: TestClient, world: tuple[World, Extras], admin: User
) -> None:
    found, _ = world
    web_login(client, admin.username)
    answer = client.get(f"/projects/{found.project.id}/data", params={"agreement_below": "2"})
    assert answer.status_code == 422
    assert "agreement below: &#39;2&#39; is not a valid value" in answer.text
    skips = client.get(
        f"/projects/{found.project.id}/data", params={"view": "skips", "skip_reason": "bored"}
    )
    assert skips.status_code == 422
    assert "skip reason: &#39;bored&#39; is not a valid value" in skips.text


def test_the_skips_tab(client: TestClient, world: tuple[World, Extras], admin: User) -> None:
    found, extras = world
    web_login(client, admin.username)
    base = f"/projects/{found.project.id}/data"
    answer = client.get(base, params={"view": "skips"})
    assert answer.status_code == 200
    assert row_ids(answer.text) == [extras.skips[1].id, extras.skips[0].id]
    assert "The prompt is unclear" in answer.text
    assert "What is asked here?" in answer.text
    assert "40 s" in answer.text
    by_reason = client.get(base, params={"view": "skips", "skip_reason": "broken_task"})
    assert row_ids(by_reason.text) == [extras.skips[1].id]
    prompts = client.get(base, params={"view": "prompts", "skipped": "no"})
    assert row_ids(prompts.text) == [found.tasks[0].prompt_id]


def test_an_imported_comparison_is_reviewed_from_its_own_page(
    client: TestClient, db: Session, world: tuple[World, Extras], admin: User
) -> None:
    found, _ = world
    prompt_id = found.tasks[0].prompt_id
    imported = Comparison(
        prompt_id=prompt_id, source=LabelSource.imported, source_name="hh.jsonl", comment=""
    )
    db.add(imported)
    db.flush()
    better, worse = db.scalars(
        select(Response.id).where(Response.prompt_id == prompt_id).order_by(Response.id)
    )
    db.add_all(
        [
            ComparisonItem(comparison_id=imported.id, response_id=better, rank=1),
            ComparisonItem(comparison_id=imported.id, response_id=worse, rank=2),
        ]
    )
    db.commit()
    web_login(client, admin.username)
    listed = client.get(f"/projects/{found.project.id}/data", params={"source": "import"})
    assert row_ids(listed.text)[0] == imported.id
    assert f'href="/comparisons/{imported.id}" data-testid="comparison-link"' in listed.text
    page = client.get(f"/comparisons/{imported.id}")
    assert page.status_code == 200
    assert "Imported from hh.jsonl" in page.text
    assert page.text.index(f'data-testid="judged-{better}"') < page.text.index(
        f'data-testid="judged-{worse}"'
    )
    token = csrf_from(page.text)
    refused = client.post(
        f"/comparisons/{imported.id}/review",
        data={"csrf_token": token, "verdict": "rejected", "reason": " "},
    )
    assert refused.status_code == 422
    assert "say why the label is rejected" in refused.text
    assert db.scalars(select(LabelReview)).all() == []
    done = client.post(
        f"/comparisons/{imported.id}/review",
        data={"csrf_token": token, "verdict": "rejected", "reason": "answers swapped"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, f"/comparisons/{imported.id}")
    shown = client.get(f"/comparisons/{imported.id}").text
    assert f'data-testid="review-comparison-{imported.id}"' in shown
    assert "answers swapped" in shown
    review = db.scalars(select(LabelReview)).one()
    assert (review.comparison_id, review.reason) == (imported.id, "answers swapped")


def test_a_labeler_cannot_open_a_comparison(
    client: TestClient, world: tuple[World, Extras], labeler: User
) -> None:
    found, _ = world
    web_login(client, labeler.username)
    assert client.get(f"/comparisons/{found.comparisons[3].id}").status_code == 403
    assert client.get("/comparisons/999999").status_code == 403
