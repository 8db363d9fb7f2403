"""The review routes of the JSON API: the same services as the task page (tests/services/
test_reviews.py holds the rules); here, what a script sees."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import LabelReview, Role, Task, User
from tests.api.helpers import API
from tests.conftest import bearer, make_token, make_user
from tests.factories import judge_task, make_comparison_tasks, make_project, make_queue
from tests.services.test_reviews import task_responses


def test_an_admin_rejects_with_a_reason_sends_back_and_reads_the_review_queue(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue = make_queue(db, project, overlap=2)
    task = make_comparison_tasks(db, queue, project, 1, responses_each=2)[0]
    ids = sorted(response.response_id for response in task_responses(db, task))
    careful, hasty = (make_user(db, name, Role.labeler) for name in ("careful", "hasty"))
    judge_task(db, queue, careful, ids)
    quick = judge_task(db, queue, hasty, list(reversed(ids)), seconds=2)
    headers = bearer(make_token(db, admin))

    picked = client.get(f"{API}/projects/{project.id}/review-queue", headers=headers)
    assert picked.status_code == 200
    assert [(item["comparison_id"], item["reasons"]) for item in picked.json()["items"]] == [
        (quick - 1, ["low agreement"]),
        (quick, ["low agreement", "fast"]),
    ]
    fast_only = client.get(
        f"{API}/projects/{project.id}/review-queue",
        params={"agreement_below": 0, "faster_than": 5},
        headers=headers,
    )
    assert [item["comparison_id"] for item in fast_only.json()["items"]] == [quick]

    blank = client.post(
        f"{API}/comparisons/{quick}/review",
        json={"verdict": "rejected", "reason": "  "},
        headers=headers,
    )
    assert blank.status_code == 422
    assert blank.json()["error"]["field"] == "reason"
    assert db.scalar(select(func.count()).select_from(LabelReview)) == 0

    rejected = client.post(
        f"{API}/comparisons/{quick}/review",
        json={"verdict": "rejected", "reason": "ranked in two seconds"},
        headers=headers,
    )
    assert rejected.status_code == 201
    body = rejected.json()
    assert (body["comparison_id"], body["demonstration_id"]) == (quick, None)
    assert (body["verdict"], body["reason"], body["reviewer_id"]) == (
        "rejected",
        "ranked in two seconds",
        admin.id,
    )
    # Reviewed now: it leaves the queue of labels worth a look.
    after = client.get(f"{API}/projects/{project.id}/review-queue", headers=headers).json()
    assert [item["comparison_id"] for item in after["items"]] == [quick - 1]

    sent = client.post(f"{API}/tasks/{task.id}/send-back", headers=headers)
    assert sent.json() == {"task_id": task.id, "overlap": 3}
    db.expire_all()
    assert db.get(Task, task.id).overlap == 3  # type: ignore[union-attr]

    missing = client.post(
        f"{API}/comparisons/{2**31 - 1}/review", json={"verdict": "accepted"}, headers=headers
    )
    assert missing.status_code == 404
