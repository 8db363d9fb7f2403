"""/api/v1 labeling: lease, read, submit, replay, skip — as a labeler's client does it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Comparison, Pair, QueueKind, Role, User
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_comparison_tasks, make_project, make_prompt, make_queue, make_task


def setup_queue(db: Session, kind: QueueKind = QueueKind.comparison) -> int:
    project = make_project(db)
    queue = make_queue(db, project, kind=kind)
    if kind == QueueKind.comparison:
        make_comparison_tasks(db, queue, project, 2, responses_each=3)
    else:
        make_task(db, queue, make_prompt(db, project))
        db.commit()
    return queue.id


def test_lease_shows_the_task_without_sources(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    response = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "leased"
    assignment = body["assignment"]
    assert assignment["kind"] == "comparison"
    assert assignment["prompt_messages"] == [{"role": "user", "content": "prompt 0"}]
    assert sorted(r["content"] for r in assignment["responses"]) == [
        "answer 0",
        "answer 1",
        "answer 2",
    ]
    assert all(set(r) == {"id", "content"} for r in assignment["responses"])
    again = client.get(f"/api/v1/assignments/{assignment['id']}", headers=headers)
    assert again.json()["responses"] == assignment["responses"]
    mine = client.get("/api/v1/assignments", headers=headers).json()
    assert [a["id"] for a in mine] == [assignment["id"]]


def test_submit_replay_and_errors(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    assignment = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers).json()[
        "assignment"
    ]
    ids = [r["id"] for r in assignment["responses"]]
    body = {
        "items": [
            {"response_id": ids[0], "rank": 1, "score": 7, "flags": []},
            {"response_id": ids[1], "rank": 2, "score": 5, "flags": ["hallucination"]},
            {"response_id": ids[2], "rank": 3, "score": 2},
        ],
        "idempotency_key": "client-key-0001",
    }
    url = f"/api/v1/assignments/{assignment['id']}/comparison"
    incomplete = {**body, "items": [{**body["items"][0], "rank": None}, *body["items"][1:]]}
    refused = client.post(url, json=incomplete, headers=headers)
    assert refused.status_code == 422
    assert "the ranking is incomplete" in refused.json()["error"]["message"]
    assert (
        client.post(
            url, content=b"{not json", headers={**headers, "content-type": "application/json"}
        ).status_code
        == 422
    )
    assert db.scalar(select(func.count()).select_from(Comparison)) == 0

    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 201
    assert first.json() | {"label_id": 0} == {
        "assignment_id": assignment["id"],
        "label_id": 0,
        "replayed": False,
        "pairs": 3,
        "warnings": [],
    }
    replay = client.post(url, json=body, headers=headers)
    assert (replay.status_code, replay.json()["replayed"], replay.json()["label_id"]) == (
        201,
        True,
        first.json()["label_id"],
    )
    twice = client.post(url, json={**body, "idempotency_key": None}, headers=headers)
    assert twice.status_code == 409
    assert (
        db.scalar(select(func.count()).select_from(Comparison)),
        db.scalar(select(func.count()).select_from(Pair)),
    ) == (1, 3)


def test_other_labelers_cannot_touch_an_assignment(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    owner = bearer(make_token(db, labeler))
    intruder = bearer(make_token(db, make_user(db, "mallory")))
    assignment = client.post(f"/api/v1/queues/{queue_id}/lease", headers=owner).json()["assignment"]
    for method, path, json in [
        ("GET", f"/api/v1/assignments/{assignment['id']}", None),
        ("POST", f"/api/v1/assignments/{assignment['id']}/skip", {"reason": "broken_task"}),
    ]:
        answer = client.request(method, path, json=json, headers=intruder)
        assert answer.status_code == 404
    assert (
        client.get(f"/api/v1/assignments/{assignment['id']}", headers=owner).json()["status"]
        == "active"
    )


def test_skip_and_empty_queue(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db, QueueKind.demonstration)
    headers = bearer(make_token(db, labeler))
    assignment = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers).json()[
        "assignment"
    ]
    refused = client.post(
        f"/api/v1/assignments/{assignment['id']}/skip", json={"reason": "other"}, headers=headers
    )
    assert refused.status_code == 422
    skipped = client.post(
        f"/api/v1/assignments/{assignment['id']}/skip",
        json={"reason": "lacks_expertise"},
        headers=headers,
    )
    assert (skipped.status_code, skipped.json()["status"]) == (200, "skipped")
    empty = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers)
    assert empty.json() == {"assignment": None, "message": "no task left for you in this queue"}


def test_demonstration_submit(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db, QueueKind.demonstration)
    headers = bearer(make_token(db, labeler))
    assignment = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers).json()[
        "assignment"
    ]
    url = f"/api/v1/assignments/{assignment['id']}/demonstration"
    wrong = client.post(
        url, json={"messages": [{"role": "user", "content": "hi"}]}, headers=headers
    )
    assert wrong.status_code == 422
    done = client.post(
        url, json={"messages": [{"role": "assistant", "content": "Hello!"}]}, headers=headers
    )
    assert (done.status_code, done.json()["pairs"]) == (201, 0)


def test_staff_cannot_lease_and_labelers_cannot_requeue(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    admin = bearer(make_token(db, make_user(db, "boss", Role.admin)))
    assert client.post(f"/api/v1/queues/{queue_id}/lease", headers=admin).status_code == 403
    labeler_headers = bearer(make_token(db, labeler))
    assert (
        client.post(
            f"/api/v1/queues/{queue_id}/requeue-superseded", headers=labeler_headers
        ).status_code
        == 403
    )
    answer = client.post(f"/api/v1/queues/{queue_id}/requeue-superseded", headers=admin)
    assert answer.status_code == 422
    assert (
        answer.json()["error"]["message"]
        == "the project has no published guideline to re-judge under"
    )
