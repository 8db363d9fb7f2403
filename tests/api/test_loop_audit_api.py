"""/api/v1 reward model audit and response lineage: staff read and act, labelers get 403.
The figures themselves are worked out in tests/services/test_audit.py and test_lineage.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Role, Run, RunKind, RunStatus, Task, User
from app.settings import Settings
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token, make_user
from tests.services.test_audit import AuditWorld, build_audit_world
from tests.services.test_lineage import LineageWorld, build_lineage_world
from tests.training_factories import queued_messages


@pytest.fixture
def world(db: Session, settings: Settings) -> AuditWorld:
    return build_audit_world(db, settings)


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def count(db: Session, table: type) -> int:
    return db.scalar(select(func.count()).select_from(table)) or 0


def test_the_audit_reports_agreement_and_the_disagreements(
    client: TestClient, world: AuditWorld, as_researcher: dict[str, str]
) -> None:
    response = client.get(
        f"{API}/models/{world.reward.id}/audit",
        params={"project_id": world.project.id, "limit": 2},
        headers=as_researcher,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    figures = {key: body[key] for key in body if key != "disagreements"}
    assert figures == {
        "project_id": world.project.id,
        "model_id": world.reward.id,
        "model_name": "rm",
        "judged_pairs": 7,
        "checked_pairs": 6,
        "agreeing_pairs": 2,
        "agreement_rate": pytest.approx(1 / 3),
        "not_scored_pairs": 1,
        "needs_score_run": True,
        "disagreeing_pairs": 4,
    }
    r = world.r
    first = body["disagreements"][0]
    assert {key: first[key] for key in first if key != "support"} == {
        "task_id": world.tasks[1].id,
        "prompt_id": world.tasks[1].prompt_id,
        "prompt_text": "Question 2?",
        "winner_response_id": r["a2"],
        "loser_response_id": r["b2"],
        "winner_text": "answer a2",
        "loser_text": "answer b2",
        "winner_score": 0.5,
        "loser_score": 3.0,
        "score_gap": 2.5,
        "labelers": 3,
        "agreeing_labelers": 2,
    }
    assert [pair["winner_response_id"] for pair in body["disagreements"]] == [r["a2"], r["b4"]]
    # The project defaults to the model's own.
    again = client.get(f"{API}/models/{world.reward.id}/audit?limit=2", headers=as_researcher)
    assert again.json() == body


def test_a_policy_model_is_refused(
    client: TestClient, world: AuditWorld, as_researcher: dict[str, str]
) -> None:
    response = client.get(
        f"{API}/models/{world.policy.id}/audit",
        params={"project_id": world.project.id},
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        f"model {world.policy.id} is a policy model; only a reward model scores responses to audit",
        "model_id",
    )


def test_requeue_creates_tasks_once(
    client: TestClient, db: Session, world: AuditWorld, as_researcher: dict[str, str]
) -> None:
    url = f"{API}/models/{world.reward.id}/audit/requeue"
    params = {"project_id": world.project.id}
    response = client.post(
        url, params=params, json={"queue_id": world.review.id}, headers=as_researcher
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["queue_id"], body["created"], body["skipped"]) == (world.review.id, 4, 0)
    assert sorted(body["task_ids"]) == sorted(
        db.scalars(select(Task.id).where(Task.queue_id == world.review.id))
    )
    chosen = {
        "queue_id": world.review.id,
        "pairs": [{"winner_response_id": world.r["a2"], "loser_response_id": world.r["b2"]}],
    }
    again = client.post(url, params=params, json=chosen, headers=as_researcher)
    assert again.json() == {
        "queue_id": world.review.id,
        "created": 0,
        "skipped": 1,
        "task_ids": [],
    }


def test_requeue_into_a_demonstration_queue_is_refused(
    client: TestClient, db: Session, world: AuditWorld, as_researcher: dict[str, str]
) -> None:
    before = count(db, Task)
    response = client.post(
        f"{API}/models/{world.reward.id}/audit/requeue",
        params={"project_id": world.project.id},
        json={"queue_id": world.demos.id},
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        f"queue {world.demos.id} is a demonstration queue; pairs go to a comparison queue",
        "queue_id",
    )
    assert count(db, Task) == before


def test_a_score_run_is_queued_for_the_reward_model(
    client: TestClient,
    db: Session,
    settings: Settings,
    world: AuditWorld,
    as_researcher: dict[str, str],
) -> None:
    response = client.post(
        f"{API}/models/{world.reward.id}/audit/score",
        params={"project_id": world.project.id},
        headers=as_researcher,
    )
    assert response.status_code == 202, response.text
    run = db.get(Run, response.json()["id"])
    assert run is not None
    assert (run.kind, run.status, run.project_id) == (
        RunKind.score,
        RunStatus.queued,
        world.project.id,
    )
    assert (run.base_model_id, run.reward_model_id) == (world.reward.id, world.reward.id)
    assert run.hyperparameters["responses"] == "judged"
    assert queued_messages(settings) == 1


def test_lineage_of_a_sampled_response(
    client: TestClient, db: Session, settings: Settings, as_researcher: dict[str, str]
) -> None:
    world: LineageWorld = build_lineage_world(db, settings)
    response = client.get(f"{API}/responses/{world.sampled.id}/lineage", headers=as_researcher)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["source"], body["model"]["name"], body["generation_run"]["id"]) == (
        "model",
        "policy",
        world.generate.id,
    )
    sft = body["model"]["run"]["base_model"]
    labelers = sft["run"]["snapshot"]["contents"]["labelers"]
    assert [(row["username"], row["rows"]) for row in labelers] == [("ann", 2), ("bob", 1)]
    assert sft["run"]["base_model"]["run"] is None
    missing = client.get(f"{API}/responses/999999/lineage", headers=as_researcher)
    assert missing.status_code == 404


@pytest.mark.parametrize("role", [Role.labeler, Role.admin])
def test_labelers_are_refused_and_admins_allowed(
    client: TestClient, db: Session, world: AuditWorld, role: Role
) -> None:
    caller = make_user(db, "caller", role)
    headers = bearer(make_token(db, caller))
    params = {"project_id": world.project.id}
    response_id = world.r["a1"]
    before = count(db, Task), count(db, Run)
    calls = [
        client.get(f"{API}/models/{world.reward.id}/audit", params=params, headers=headers),
        client.post(
            f"{API}/models/{world.reward.id}/audit/requeue",
            params=params,
            json={"queue_id": world.demos.id},
            headers=headers,
        ),
        client.post(f"{API}/models/{world.policy.id}/audit/score", params=params, headers=headers),
        client.get(f"{API}/responses/{response_id}/lineage", headers=headers),
    ]
    if role == Role.labeler:
        assert [call.status_code for call in calls] == [403] * 4
        assert calls[3].json() == error(
            "permission_denied", "this needs the admin or researcher role"
        )
    else:
        # Allowed in: the audit and lineage answer, the two bad posts are refused on content.
        assert [call.status_code for call in calls] == [200, 422, 422, 200]
    assert (count(db, Task), count(db, Run)) == before
