"""Task events: the service, the admin API and the admin page over it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import Role, TaskEvent, User
from app.services.task_events import NewTaskEvent, list_events, record_event
from tests.conftest import bearer, make_token, make_user, web_login

TRAIN = "smiley.jobs.train"


@pytest.fixture(autouse=True)
def no_events_from_other_tests(db: Session) -> None:
    """Other tests send tasks, and their `sent` events are committed by the recorder's own
    connection; this test's transaction starts from an empty table (and rolls back)."""
    db.execute(delete(TaskEvent))
    db.flush()


IMPORT = "smiley.datasets.run"


def _seed(db: Session) -> None:
    record_event(db, NewTaskEvent("t1", TRAIN, "sent", run_id=4), keep=100)
    record_event(db, NewTaskEvent("t1", TRAIN, "started", hostname="w@h", run_id=4), keep=100)
    record_event(
        db,
        NewTaskEvent(
            "t1",
            TRAIN,
            "failed",
            hostname="w@h",
            run_id=4,
            error_type="ValueError",
            error_message="<script>alert(1)</script> bad rows",
        ),
        keep=100,
    )
    record_event(db, NewTaskEvent("t2", IMPORT, "succeeded", dataset_job_id=9), keep=100)


def test_events_are_listed_newest_first_and_filtered(db: Session) -> None:
    _seed(db)
    assert [(e.task_id, e.state) for e in list_events(db)] == [
        ("t2", "succeeded"),
        ("t1", "failed"),
        ("t1", "started"),
        ("t1", "sent"),
    ]
    assert [e.state for e in list_events(db, task_name=TRAIN, state="failed")] == ["failed"]
    assert [e.dataset_job_id for e in list_events(db, task_name=IMPORT)] == [9]
    assert [e.state for e in list_events(db, limit=2)] == ["succeeded", "failed"]


def test_the_table_keeps_only_the_newest(db: Session) -> None:
    for number in range(7):
        record_event(db, NewTaskEvent(f"t{number}", TRAIN, "sent"), keep=3)
    kept = db.scalars(select(TaskEvent.task_id).order_by(TaskEvent.id)).all()
    assert kept == ["t4", "t5", "t6"]
    assert db.scalar(select(func.count()).select_from(TaskEvent)) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"state": "exploded"}, "state must be one of"), ({"limit": 0}, "limit must be between")],
)
def test_bad_filters_are_refused(db: Session, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DomainError, match=message):
        list_events(db, **kwargs)  # type: ignore[arg-type]


def test_an_unknown_state_is_not_recorded(db: Session) -> None:
    with pytest.raises(DomainError, match="unknown task event state"):
        record_event(db, NewTaskEvent("x", TRAIN, "exploded"), keep=100)
    assert db.scalar(select(func.count()).select_from(TaskEvent)) == 0


def test_the_api_lists_and_filters_for_admins(client: TestClient, db: Session, admin: User) -> None:
    _seed(db)
    headers = bearer(make_token(db, admin))
    body = client.get(
        "/api/v1/admin/task-events", params={"task_name": TRAIN}, headers=headers
    ).json()
    assert [(e["state"], e["run_id"], e["error_type"]) for e in body] == [
        ("failed", 4, "ValueError"),
        ("started", 4, None),
        ("sent", 4, None),
    ]
    assert body[0]["error_message"] == "<script>alert(1)</script> bad rows"
    failed = client.get(
        "/api/v1/admin/task-events", params={"state": "succeeded"}, headers=headers
    ).json()
    assert [(e["task_id"], e["dataset_job_id"]) for e in failed] == [("t2", 9)]
    bad = client.get("/api/v1/admin/task-events", params={"state": "nope"}, headers=headers)
    assert bad.status_code == 400
    assert "state must be one of" in bad.text


def test_the_api_is_for_admins_only(client: TestClient, db: Session) -> None:
    assert client.get("/api/v1/admin/task-events").status_code == 401
    for name, role in (("lab", Role.labeler), ("res", Role.researcher)):
        token = make_token(db, make_user(db, name, role))
        response = client.get("/api/v1/admin/task-events", headers=bearer(token))
        assert response.status_code == 403


def test_the_page_shows_events_with_links_and_escapes_errors(
    client: TestClient, db: Session, admin: User
) -> None:
    _seed(db)
    web_login(client, admin.username)
    page = client.get("/admin/task-events", params={"task_name": TRAIN, "state": "failed"})
    assert page.status_code == 200
    assert page.text.count('data-testid="task-event"') == 1
    assert '<a href="/runs/4" data-testid="task-event-run">run #4</a>' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; bad rows" in page.text
    assert "<script>alert(1)" not in page.text
    assert 'href="/admin/task-events"' in page.text  # the navigation links here
    everything = client.get("/admin/task-events")
    assert everything.text.count('data-testid="task-event"') == 4
    assert "dataset job #9" in everything.text
    empty = client.get("/admin/task-events", params={"state": "revoked"})
    assert 'data-testid="task-events-empty"' in empty.text


def test_the_page_is_for_admins_only(client: TestClient, labeler: User) -> None:
    assert client.get("/admin/task-events").status_code == 303
    web_login(client, labeler.username)
    assert client.get("/admin/task-events").status_code == 403
