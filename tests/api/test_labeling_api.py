"""/api/v1 labeling: lease, read, submit, replay, skip — as a labeler's client does it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    Demonstration,
    Draft,
    Pair,
    QueueKind,
    Response,
    Role,
    User,
)
from app.models.base import utcnow
from tests.api.helpers import count, error, iso, reload
from tests.conftest import PASSWORD, bearer, make_token, make_user
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_prompt,
    make_queue,
    make_responses,
    make_task,
    publish_guideline,
)


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
    assert {
        key: assignment[key]
        for key in ("status", "queue_name", "draft_response", "guideline_version", "draft_revision")
    } == {
        "status": "active",
        "queue_name": "comparison queue",
        "draft_response": None,
        "guideline_version": None,
        "draft_revision": None,
    }
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
        "rewrites": [],
        "suggestion": None,
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


# --- drafts -----------------------------------------------------------------------------------


def lease_one(client: TestClient, headers: dict[str, str], queue_id: int) -> dict[str, Any]:
    answer = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["assignment"]


def test_draft_save_read_and_stale_revision(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    assignment = lease_one(client, headers, queue_id)
    url = f"/api/v1/assignments/{assignment['id']}/draft"
    missing = client.get(url, headers=headers)
    assert (missing.status_code, missing.json()) == (
        404,
        error("not_found", f"no draft saved for assignment {assignment['id']}"),
    )

    saved = client.put(
        url, json={"content": {"comment": "so far"}, "base_revision": 0}, headers=headers
    )
    assert saved.status_code == 200
    draft = db.get(Draft, (assignment["task_id"], labeler.id))
    assert draft is not None
    assert saved.json() == {"revision": 1, "updated_at": iso(draft.updated_at)}
    assert client.get(url, headers=headers).json() == {
        "task_id": assignment["task_id"],
        "assignment_id": assignment["id"],
        "content": {"comment": "so far"},
        "revision": 1,
        "updated_at": iso(draft.updated_at),
    }
    again = client.put(
        url, json={"content": {"comment": "more"}, "base_revision": 1}, headers=headers
    )
    assert again.json()["revision"] == 2
    stale = client.put(
        url, json={"content": {"comment": "old tab"}, "base_revision": 1}, headers=headers
    )
    assert (stale.status_code, stale.json()) == (
        409,
        error(
            "conflict",
            "another tab saved this draft meanwhile (it is at revision 2); "
            "reload it before saving again",
            "base_revision",
        ),
    )
    assert client.get(url, headers=headers).json()["content"] == {"comment": "more"}
    shown = client.get(f"/api/v1/assignments/{assignment['id']}", headers=headers).json()
    assert shown["draft_revision"] == 2


def test_a_draft_survives_logging_out_and_in_again(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    login = {"username": "lena", "password": PASSWORD, "token_name": "laptop"}
    first = client.post("/api/v1/auth/token", json=login)
    assert first.status_code == 201
    headers = bearer(first.json()["token"])
    assignment = lease_one(client, headers, queue_id)
    url = f"/api/v1/assignments/{assignment['id']}/draft"
    client.put(url, json={"content": {"comment": "do not lose this"}}, headers=headers)

    revoked = client.delete(f"/api/v1/tokens/{first.json()['info']['id']}", headers=headers)
    assert revoked.status_code == 200
    assert client.get(url, headers=headers).status_code == 401
    second = client.post("/api/v1/auth/token", json={**login, "token_name": "desktop"})
    headers = bearer(second.json()["token"])

    draft = client.get(url, headers=headers)
    assert (draft.status_code, draft.json()["content"], draft.json()["revision"]) == (
        200,
        {"comment": "do not lose this"},
        1,
    )


# --- renewing an expired lease ----------------------------------------------------------------


def expire(db: Session, assignment_id: int) -> None:
    assignment = db.get(Assignment, assignment_id)
    assert assignment is not None
    assignment.leased_at = utcnow() - timedelta(hours=1)
    assignment.lease_expires_at = utcnow() - timedelta(minutes=1)
    db.commit()


def test_renew_gives_the_same_task_back_with_the_draft(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    old = lease_one(client, headers, queue_id)
    client.put(
        f"/api/v1/assignments/{old['id']}/draft", json={"content": {"x": 1}}, headers=headers
    )
    expire(db, old["id"])

    renewed = client.post(f"/api/v1/assignments/{old['id']}/renew", headers=headers)

    assert renewed.status_code == 201
    body = renewed.json()
    assert body["id"] != old["id"]
    assert {key: body[key] for key in ("task_id", "responses", "status", "draft_revision")} == {
        "task_id": old["task_id"],
        "responses": old["responses"],
        "status": "active",
        "draft_revision": 1,
    }
    assert client.get(f"/api/v1/assignments/{body['id']}/draft", headers=headers).json()[
        "content"
    ] == {"x": 1}
    ids = [response["id"] for response in body["responses"]]
    done = client.post(
        f"/api/v1/assignments/{body['id']}/comparison",
        json={"items": [{"response_id": r, "rank": k, "score": 4} for k, r in enumerate(ids, 1)]},
        headers=headers,
    )
    assert (done.status_code, done.json()["assignment_id"]) == (201, body["id"])
    assert count(db, Draft) == 0


def test_renew_is_409_when_the_task_is_full(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    old = lease_one(client, headers, queue_id)
    expire(db, old["id"])
    omar = bearer(make_token(db, make_user(db, "omar")))
    taken = lease_one(client, omar, queue_id)
    assert taken["task_id"] == old["task_id"]
    before = count(db, Assignment)

    refused = client.post(f"/api/v1/assignments/{old['id']}/renew", headers=headers)

    assert (refused.status_code, refused.json()) == (
        409,
        error("conflict", "the task was taken by others meanwhile; your draft is kept"),
    )
    assert count(db, Assignment) == before
    expired = db.get(Assignment, old["id"])
    assert expired is not None and reload(db, expired).status == AssignmentStatus.expired


# --- rewrites and draft responses -------------------------------------------------------------


def test_a_rewrite_becomes_a_response_a_comparison_and_a_pair(
    client: TestClient, db: Session, labeler: User
) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    assignment = lease_one(client, headers, queue_id)
    ids = [response["id"] for response in assignment["responses"]]
    done = client.post(
        f"/api/v1/assignments/{assignment['id']}/comparison",
        json={
            "items": [{"response_id": r, "rank": k, "score": 8 - k} for k, r in enumerate(ids, 1)],
            "rewrites": [{"response_id": ids[2], "content": "A kinder answer."}],
        },
        headers=headers,
    )
    assert done.status_code == 201
    (new_id,) = done.json()["rewrites"]
    response = db.get(Response, new_id)
    assert response is not None
    assert (response.content, response.parent_id, response.author_id) == (
        "A kinder answer.",
        ids[2],
        labeler.id,
    )
    rewrite = db.scalar(
        select(Comparison).where(Comparison.rewrite_in_comparison_id == done.json()["label_id"])
    )
    assert rewrite is not None and (rewrite.task_id, rewrite.source_name) == (None, "rewrite")
    pairs = db.execute(
        select(Pair.winner_response_id, Pair.loser_response_id).where(
            Pair.comparison_id == rewrite.id
        )
    ).all()
    assert [tuple(pair) for pair in pairs] == [(new_id, ids[2])]
    assert (count(db, Comparison), count(db, Pair)) == (2, 4)


def test_a_demonstration_task_shows_its_draft_response(
    client: TestClient, db: Session, labeler: User
) -> None:
    project = make_project(db)
    queue = make_queue(db, project, kind=QueueKind.demonstration)
    prompt = make_prompt(db, project)
    (offered,) = make_responses(db, prompt, 1)
    make_task(db, queue, prompt, [offered])
    db.commit()
    headers = bearer(make_token(db, labeler))
    assignment = lease_one(client, headers, queue.id)
    assert (assignment["responses"], assignment["draft_response"]) == (
        [],
        {"id": offered.id, "content": "answer 0"},
    )
    done = client.post(
        f"/api/v1/assignments/{assignment['id']}/demonstration",
        json={
            "messages": [{"role": "assistant", "content": "answer 0, but better"}],
            "origin": "edited_draft",
            "draft_response_id": offered.id,
        },
        headers=headers,
    )
    assert done.status_code == 201
    demonstration = db.get(Demonstration, done.json()["label_id"])
    assert demonstration is not None and demonstration.draft_response_id == offered.id


# --- the labeler's queues and guideline -------------------------------------------------------


def test_my_queues(client: TestClient, db: Session, labeler: User) -> None:
    queue_id = setup_queue(db)
    headers = bearer(make_token(db, labeler))
    assignment = lease_one(client, headers, queue_id)
    answer = client.get("/api/v1/me/queues", headers=headers)
    assert (answer.status_code, answer.json()) == (
        200,
        [
            {
                "queue_id": queue_id,
                "queue_name": "comparison queue",
                "kind": "comparison",
                "priority": 0,
                "project_id": assignment["project_id"],
                "project_name": "Helpful",
                "left": 1,
                "done_today": 0,
                "held": [assignment["id"]],
            }
        ],
    )
    admin = bearer(make_token(db, make_user(db, "boss", Role.admin)))
    assert client.get("/api/v1/me/queues", headers=admin).json() == []


def test_guideline_status_and_read(client: TestClient, db: Session, labeler: User) -> None:
    project = make_project(db)
    make_queue(db, project)
    headers = bearer(make_token(db, labeler))
    status_url = f"/api/v1/projects/{project.id}/guideline/status"
    read_url = f"/api/v1/projects/{project.id}/guideline/read"
    nothing = {
        "project_id": project.id,
        "version": None,
        "published_at": None,
        "last_read_version": None,
        "changed_since_read": False,
    }
    assert client.get(status_url, headers=headers).json() == nothing
    assert client.post(read_url, headers=headers).json() == nothing
    first = publish_guideline(db, project, 1)
    assert client.get(status_url, headers=headers).json() == nothing | {
        "version": 1,
        "published_at": iso(first.published_at),
        "changed_since_read": True,
    }
    read = client.post(read_url, headers=headers)
    assert (read.status_code, read.json()) == (
        200,
        nothing | {"version": 1, "published_at": iso(first.published_at), "last_read_version": 1},
    )
    second = publish_guideline(db, project, 2, "Be kinder.")
    assert client.get(status_url, headers=headers).json() == {
        "project_id": project.id,
        "version": 2,
        "published_at": iso(second.published_at),
        "last_read_version": 1,
        "changed_since_read": True,
    }
    unknown = client.get("/api/v1/projects/987654/guideline/status", headers=headers)
    assert (unknown.status_code, unknown.json()) == (
        404,
        error("not_found", "no project with id 987654"),
    )
