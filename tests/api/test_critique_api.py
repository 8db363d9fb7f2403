"""/api/v1 principles (versions, never edited in place), revisions, and a queue's suggestion
mode with labelers' agreement: staff read and write principles, admins set the mode."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Principle,
    Project,
    QueueKind,
    SuggestionMode,
    TaskResponse,
    User,
)
from app.services import suggestions
from app.settings import Settings
from tests.api.helpers import API, count, error
from tests.conftest import bearer, make_token
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.training_factories import make_model

HARMLESS = {
    "name": "harmless",
    "critique_request": "Identify ways the response is harmful.",
    "revision_request": "Rewrite the response to remove anything harmful.",
}


@pytest.fixture
def project(db: Session) -> Project:
    project = make_project(db)
    db.commit()
    return project


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def test_principles_are_created_versioned_and_retired(
    client: TestClient, db: Session, project: Project, as_researcher: dict[str, str]
) -> None:
    url = f"{API}/projects/{project.id}/principles"
    made = client.post(url, json=HARMLESS, headers=as_researcher)
    assert made.status_code == 201, made.text
    first = made.json()
    assert {key: first[key] for key in ("name", "version", "previous_id", "revisions")} == {
        "name": "harmless", "version": 1, "previous_id": None, "revisions": 0,
    }  # fmt: skip

    edited = client.put(
        f"{API}/principles/{first['id']}",
        json={**HARMLESS, "critique_request": "What is harmful here?"},
        headers=as_researcher,
    )
    assert edited.status_code == 201
    second = edited.json()
    assert (second["version"], second["previous_id"], second["critique_request"]) == (
        2, first["id"], "What is harmful here?",
    )  # fmt: skip
    assert [p["id"] for p in client.get(url, headers=as_researcher).json()] == [second["id"]]
    history = client.get(url, params={"history": "true"}, headers=as_researcher).json()
    assert [(p["version"], p["retired_at"] is None) for p in history] == [(2, True), (1, False)]
    assert history[1]["critique_request"] == HARMLESS["critique_request"]

    stale = client.put(f"{API}/principles/{first['id']}", json=HARMLESS, headers=as_researcher)
    assert stale.status_code == 409
    assert stale.json() == error(
        "conflict",
        f"principle {first['id']} is retired: version {second['id']} replaced it; edit the "
        "current version",
    )
    taken = client.post(url, json={**HARMLESS, "revision_request": "x"}, headers=as_researcher)
    assert (taken.status_code, taken.json()["error"]["message"]) == (
        409, "a principle named 'harmless' exists in this project",
    )  # fmt: skip
    blank = client.post(url, json={**HARMLESS, "name": "  "}, headers=as_researcher)
    assert blank.status_code == 422
    assert count(db, Principle) == 2

    retired = client.delete(f"{API}/principles/{second['id']}", headers=as_researcher)
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    assert client.get(url, headers=as_researcher).json() == []
    assert client.get(f"{API}/projects/{project.id}/revisions", headers=as_researcher).json() == []


def test_labelers_cannot_touch_principles(
    client: TestClient, db: Session, project: Project, labeler: User
) -> None:
    headers = bearer(make_token(db, labeler))
    url = f"{API}/projects/{project.id}/principles"
    assert client.get(url, headers=headers).status_code == 403
    assert client.post(url, json=HARMLESS, headers=headers).status_code == 403
    assert count(db, Principle) == 0


def test_the_suggestion_mode_is_an_admins_setting_and_reports_agreement(
    client: TestClient, db: Session, project: Project, admin: User, as_researcher: dict[str, str]
) -> None:
    queue = make_queue(db, project)
    demos = make_queue(db, project, QueueKind.demonstration, name="demos")
    db.commit()
    as_admin = bearer(make_token(db, admin))
    url = f"{API}/queues/{queue.id}/suggestions"
    assert client.put(url, json={"mode": "after"}, headers=as_researcher).status_code == 403
    answer = client.put(url, json={"mode": "after"}, headers=as_admin)
    assert answer.status_code == 200
    empty = {"comparisons": 0, "pairs": 0, "agreed": 0, "rate": None}
    assert answer.json() == {
        "queue_id": queue.id,
        "mode": "after",
        "by_mode": [{"mode": "after", **empty}, {"mode": "before", **empty}],
    }
    assert client.get(url, headers=as_researcher).json()["mode"] == "after"
    assert client.put(url, json={"mode": "sometimes"}, headers=as_admin).status_code == 422
    refused = client.put(
        f"{API}/queues/{demos.id}/suggestions", json={"mode": "before"}, headers=as_admin
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        f"queue {demos.id} is a demonstration queue: there is no ranking to suggest"
    )


def test_a_labeler_gets_the_judges_ranking_before_only_in_before_mode_and_after_submitting(
    client: TestClient, db: Session, settings: Settings, project: Project, labeler: User
) -> None:
    queue = make_queue(db, project)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=2)
    judge = make_model(db, settings, "judge", project=project)
    first, second = db.scalars(
        select(TaskResponse.response_id).where(TaskResponse.task_id == task.id)
    ).all()
    judged = Comparison(task_id=task.id, prompt_id=task.prompt_id, source=LabelSource.ai,
                        model_id=judge.id)  # fmt: skip
    db.add(judged)
    db.flush()
    db.add_all([
        ComparisonItem(comparison_id=judged.id, response_id=second, rank=1, flags=[]),
        ComparisonItem(comparison_id=judged.id, response_id=first, rank=2, flags=[]),
    ])  # fmt: skip
    db.commit()
    headers = bearer(make_token(db, labeler))
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.after)
    leased = client.post(f"{API}/queues/{queue.id}/lease", headers=headers).json()["assignment"]
    assert leased["suggestion"] is None
    suggestions.set_suggestion_mode(db, queue.id, SuggestionMode.before)
    shown = client.get(f"{API}/assignments/{leased['id']}", headers=headers).json()
    assert shown["suggestion"] == [[second], [first]]

    items = [{"response_id": first, "score": 5, "rank": 1},
             {"response_id": second, "score": 3, "rank": 2}]  # fmt: skip
    done = client.post(
        f"{API}/assignments/{leased['id']}/comparison", json={"items": items}, headers=headers
    )
    assert done.status_code == 201
    assert done.json()["suggestion"] == [[second], [first]]
    label = db.get(Comparison, done.json()["label_id"])
    assert label is not None
    assert (label.suggestion_mode, label.suggestion_comparison_id) == (
        SuggestionMode.before, judged.id,
    )  # fmt: skip
