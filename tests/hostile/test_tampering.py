"""Two labelers on one project: B changes ids in URLs and bodies to reach A's work.

Every attempt, over the JSON API and the workbench forms alike, is a 404 that says the same as
for an id that does not exist (so ids reveal nothing), and every labeling row is exactly as it
was before. A labeler also cannot lease from a queue they are not listed on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import QueueKind, QueueLabeler, User
from tests.api.helpers import API, Json, db_state, error
from tests.conftest import bearer, make_token, make_user, web_login
from tests.factories import make_comparison_tasks, make_project, make_prompt, make_queue, make_task

LABEL_TABLES = (
    "assignments",
    "comparisons",
    "comparison_items",
    "pairs",
    "demonstrations",
    "responses",
    "drafts",
    "guideline_reads",
)
MISSING_ID = 987_654


@dataclass
class Work:
    """A's assignments in each state, and the ids B will try."""

    drafted: int  # active comparison with a saved draft
    demo: int  # active demonstration
    submitted: int  # comparison, labelled
    skipped: int
    a_response_ids: list[int]  # responses of A's drafted task
    a_key: str  # idempotency key of A's submitted comparison
    b_assignment: Json  # B's own active comparison assignment
    a_headers: dict[str, str]
    b_headers: dict[str, str]


def _lease(client: TestClient, queue_id: int, headers: dict[str, str]) -> Json:
    answer = client.post(f"{API}/queues/{queue_id}/lease", headers=headers)
    assert answer.status_code == 200, answer.text
    assignment = answer.json()["assignment"]
    assert assignment is not None
    return assignment


def _ranked(ids: list[int], key: str | None = None) -> Json:
    body: Json = {
        "items": [
            {"response_id": response_id, "rank": rank, "score": 8 - rank * 2}
            for rank, response_id in enumerate(ids, start=1)
        ]
    }
    if key:
        body["idempotency_key"] = key
    return body


@pytest.fixture
def work(client: TestClient, db: Session) -> Work:
    project = make_project(db)
    comparisons = make_queue(db, project, name="Rank")
    make_comparison_tasks(db, comparisons, project, 4, responses_each=2)
    demos = make_queue(db, project, QueueKind.demonstration, name="Write")
    make_task(db, demos, make_prompt(db, project, "Explain tides."))
    db.commit()
    a_headers = bearer(make_token(db, make_user(db, "alice")))
    b_headers = bearer(make_token(db, make_user(db, "bob")))

    drafted = _lease(client, comparisons.id, a_headers)
    saved = client.put(
        f"{API}/assignments/{drafted['id']}/draft",
        json={"content": {"comment": "alice's private note"}},
        headers=a_headers,
    )
    assert saved.status_code == 200, saved.text
    submitted = _lease(client, comparisons.id, a_headers)
    key = "alice-key-0001"
    done = client.post(
        f"{API}/assignments/{submitted['id']}/comparison",
        json=_ranked([r["id"] for r in submitted["responses"]], key),
        headers=a_headers,
    )
    assert done.status_code == 201, done.text
    skipped = _lease(client, comparisons.id, a_headers)
    gone = client.post(
        f"{API}/assignments/{skipped['id']}/skip",
        json={"reason": "other", "note": "alice skipped"},
        headers=a_headers,
    )
    assert gone.status_code == 200, gone.text
    demo = _lease(client, demos.id, a_headers)
    return Work(
        drafted=drafted["id"],
        demo=demo["id"],
        submitted=submitted["id"],
        skipped=skipped["id"],
        a_response_ids=[r["id"] for r in drafted["responses"]],
        a_key=key,
        b_assignment=_lease(client, comparisons.id, b_headers),
        a_headers=a_headers,
        b_headers=b_headers,
    )


def _not_yours(assignment_id: int) -> Json:
    return error("not_found", f"no assignment {assignment_id} of yours")


def test_api_every_id_of_alices_is_404_for_bob_and_changes_nothing(
    client: TestClient, db: Session, work: Work
) -> None:
    before = db_state(db, LABEL_TABLES)
    demo_body = {"messages": [{"role": "assistant", "content": "bob's words"}]}
    for assignment_id in (work.drafted, work.demo, work.submitted, work.skipped, MISSING_ID):
        attempts = [
            ("GET", f"/assignments/{assignment_id}", None),
            ("GET", f"/assignments/{assignment_id}/draft", None),
            ("PUT", f"/assignments/{assignment_id}/draft", {"content": {"comment": "bob"}}),
            ("POST", f"/assignments/{assignment_id}/comparison", _ranked(work.a_response_ids)),
            ("POST", f"/assignments/{assignment_id}/demonstration", demo_body),
            ("POST", f"/assignments/{assignment_id}/skip", {"reason": "broken_task"}),
            ("POST", f"/assignments/{assignment_id}/renew", None),
        ]
        for method, path, body in attempts:
            answer = client.request(method, f"{API}{path}", json=body, headers=work.b_headers)
            assert (answer.status_code, answer.json()) == (404, _not_yours(assignment_id)), path
    # Bob's list of assignments holds only his own.
    listed = client.get(f"{API}/assignments", headers=work.b_headers)
    assert [found["id"] for found in listed.json()] == [work.b_assignment["id"]]
    assert db_state(db, LABEL_TABLES) == before
    # Alice still sees her draft as she left it.
    draft = client.get(f"{API}/assignments/{work.drafted}/draft", headers=work.a_headers)
    assert draft.json()["content"] == {"comment": "alice's private note"}


def test_api_alices_ids_inside_bobs_own_bodies_are_refused(
    client: TestClient, db: Session, work: Work
) -> None:
    before = db_state(db, LABEL_TABLES)
    mine = work.b_assignment["id"]
    # Alice's responses ranked on Bob's task.
    answer = client.post(
        f"{API}/assignments/{mine}/comparison",
        json=_ranked(work.a_response_ids),
        headers=work.b_headers,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_input"
    # Alice's idempotency key on Bob's own, valid ranking: not a replay of her label.
    answer = client.post(
        f"{API}/assignments/{mine}/comparison",
        json=_ranked([r["id"] for r in work.b_assignment["responses"]], work.a_key),
        headers=work.b_headers,
    )
    assert (answer.status_code, answer.json()) == (
        409,
        error("conflict", "this idempotency key was used for another label"),
    )
    assert db_state(db, LABEL_TABLES) == before


def test_api_a_queue_bob_is_not_listed_on_is_404(
    client: TestClient, db: Session, work: Work
) -> None:
    project = make_project(db, "Private")
    private = make_queue(db, project, name="Alice only", open_to_all=False)
    make_comparison_tasks(db, private, project, 1, responses_each=2)
    alice = db.query(User).filter_by(username="alice").one()
    db.add(QueueLabeler(queue_id=private.id, user_id=alice.id))
    db.commit()
    before = db_state(db, LABEL_TABLES)
    for queue_id in (private.id, MISSING_ID):
        answer = client.post(f"{API}/queues/{queue_id}/lease", headers=work.b_headers)
        assert (answer.status_code, answer.json()) == (
            404,
            error("not_found", f"no queue {queue_id} open to you"),
        )
    mine = client.get(f"{API}/me/queues", headers=work.b_headers).json()
    assert private.id not in [line["queue_id"] for line in mine]
    assert db_state(db, LABEL_TABLES) == before
    # Alice, who is listed, can.
    assert _lease(client, private.id, work.a_headers)["queue_id"] == private.id


@pytest.fixture
def bob_web(app: FastAPI, work: Work) -> Iterator[tuple[TestClient, str]]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as browser:
        yield browser, web_login(browser, "bob")


def test_web_every_id_of_alices_is_404_for_bob_and_changes_nothing(
    db: Session, work: Work, bob_web: tuple[TestClient, str]
) -> None:
    browser, csrf = bob_web
    before = db_state(db, LABEL_TABLES)
    ranking = {
        "csrf_token": csrf,
        **{f"rank_{rid}": str(n) for n, rid in enumerate(work.a_response_ids, 1)},
    }
    for assignment_id in (work.drafted, work.demo, work.submitted, work.skipped, MISSING_ID):
        page = browser.get(f"/work/assignments/{assignment_id}")
        assert page.status_code == 404
        assert f"no assignment {assignment_id} of yours" in page.text
        assert "alice" not in page.text
        draft = browser.post(
            f"/work/assignments/{assignment_id}/draft",
            json={"content": {"comment": "bob"}},
            headers={"X-CSRF-Token": csrf},
        )
        assert (draft.status_code, draft.json()) == (
            404,
            {"error": "not_found", "message": f"no assignment {assignment_id} of yours"},
        )
        for action, form in (
            ("comparison", ranking),
            ("demonstration", {"csrf_token": csrf, "turn_0": "bob's words"}),
            ("skip", {"csrf_token": csrf, "reason": "broken_task"}),
            ("renew", {"csrf_token": csrf}),
        ):
            answer = browser.post(f"/work/assignments/{assignment_id}/{action}", data=form)
            assert answer.status_code == 404, (action, answer.text[:300])
            assert f"no assignment {assignment_id} of yours" in answer.text
    assert db_state(db, LABEL_TABLES) == before


def test_web_a_queue_bob_is_not_listed_on_is_404(
    db: Session, work: Work, bob_web: tuple[TestClient, str]
) -> None:
    browser, csrf = bob_web
    project = make_project(db, "Private")
    private = make_queue(db, project, name="Alice only", open_to_all=False)
    make_comparison_tasks(db, private, project, 1, responses_each=2)
    before = db_state(db, LABEL_TABLES)
    for queue_id in (private.id, MISSING_ID):
        answer = browser.post(f"/work/queues/{queue_id}/start", data={"csrf_token": csrf})
        assert answer.status_code == 404
        assert f"no queue {queue_id} open to you" in answer.text
    assert "Alice only" not in browser.get("/").text
    assert db_state(db, LABEL_TABLES) == before
