"""GET /api/v1/projects/{id}/review-queue: thresholds as query parameters, keyset pages, and
422s naming the parameter (tests/services/test_review_queue.py holds the rules)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API
from tests.conftest import bearer, make_token
from tests.services.test_review_queue import Judged, judged  # noqa: F401  (a fixture)


def test_thresholds_and_pages(
    client: TestClient,
    db: Session,
    researcher: User,
    judged: Judged,  # noqa: F811
) -> None:
    j = judged
    headers = bearer(make_token(db, researcher))
    url = f"{API}/projects/{j.project.id}/review-queue"
    first = client.get(url, params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    body = first.json()
    assert body["next_cursor"] == j.lb
    assert body["items"][0] == {
        "comparison_id": j.la,
        "task_id": body["items"][0]["task_id"],
        "labeler_id": body["items"][0]["labeler_id"],
        "labeler": "ann",
        "time_spent_seconds": 30.0,
        "task_agreement": 1 / 3,
        "reasons": ["low agreement"],
    }
    rest = client.get(url, params={"cursor": j.lb}, headers=headers).json()
    assert [item["comparison_id"] for item in rest["items"]] == [j.lc, j.hb, j.miss]
    assert rest["next_cursor"] is None
    fast = client.get(
        url,
        params={"agreement_below": 0, "faster_than": 3.5, "gold_misses": "false"},
        headers=headers,
    ).json()
    assert [(item["comparison_id"], item["reasons"]) for item in fast["items"]] == [
        (j.lc, ["fast"])
    ]


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ({"agreement_below": 1.5}, "query.agreement_below"),
        ({"agreement_below": "half"}, "query.agreement_below"),
        ({"faster_than": -1}, "query.faster_than"),
        ({"gold_misses": "maybe"}, "query.gold_misses"),
        ({"cursor": 0}, "query.cursor"),
        ({"limit": 500}, "query.limit"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    client: TestClient,
    db: Session,
    admin: User,
    judged: Judged,  # noqa: F811
    query: dict[str, object],
    location: str,
) -> None:
    answer = client.get(
        f"{API}/projects/{judged.project.id}/review-queue",
        params=query,
        headers=bearer(make_token(db, admin)),
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["problems"][0]["location"] == location
