"""/api/v1 evaluations and rounds: start one (checked before anything is queued), read its
result, list a project's, read its rounds. Staff only: a labeler judges the tasks blind."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Evaluation, Project, Run, RunKind, RunStatus, User
from app.settings import Settings
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token
from tests.services.test_evaluations import Registry, build_registry, counts, hand_worked
from tests.training_factories import queued_messages


@pytest.fixture
def world(db: Session, settings: Settings) -> Registry:
    return build_registry(db, settings)


NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def test_starting_an_evaluation_answers_with_it_and_queues_its_run(
    client: TestClient,
    db: Session,
    settings: Settings,
    world: Registry,
    as_researcher: dict[str, str],
    researcher: User,
) -> None:
    body = {
        "model_a_id": world.sft.id,
        "model_b_id": world.base.id,
        "snapshot_id": world.held_out.id,
        "overlap": 2,
    }
    response = client.post(
        f"{API}/projects/{world.project.id}/evaluations", json=body, headers=as_researcher
    )
    assert response.status_code == 202, response.text
    found = response.json()
    evaluation = db.get(Evaluation, found["id"])
    assert evaluation is not None
    run = db.get(Run, evaluation.run_id)
    assert run is not None and run.kind == RunKind.generate
    assert found == {
        "id": evaluation.id,
        "project_id": world.project.id,
        "name": "sft-1 vs base",
        "model_a_id": world.sft.id,
        "model_a_name": "sft-1",
        "model_b_id": world.base.id,
        "model_b_name": "base",
        "queue_id": evaluation.queue_id,
        "queue_name": f"Evaluation {evaluation.id}: sft-1 vs base",
        "run_id": run.id,
        "run_status": "queued",
        "created_by_id": researcher.id,
        "created_at": found["created_at"],
        "result": {
            "wins": 0,
            "ties": 0,
            "losses": 0,
            "judgements": 0,
            "tasks_judged": 0,
            "tasks_total": 0,
            "win_rate": None,
            "ci_low": None,
            "ci_high": None,
            "effective_judgements": None,
            "confidence": 0.95,
        },
    }
    assert queued_messages(settings) == 1


def test_an_evaluation_of_a_model_against_itself_is_refused_before_anything_is_stored(
    client: TestClient,
    db: Session,
    settings: Settings,
    world: Registry,
    as_researcher: dict[str, str],
) -> None:
    before = counts(db)
    body = {"model_a_id": world.sft.id, "model_b_id": world.sft.id, "snapshot_id": 1}
    response = client.post(
        f"{API}/projects/{world.project.id}/evaluations", json=body, headers=as_researcher
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input", "an evaluation compares two different models; both are sft-1", "model_b_id"
    )
    missing = client.post(
        f"{API}/projects/{world.project.id}/evaluations",
        json={"model_a_id": world.sft.id, "model_b_id": world.base.id},
        headers=as_researcher,
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "invalid_request"
    assert "a snapshot's test split or a list of ids" in missing.json()["error"]["message"]
    assert counts(db) == before
    assert queued_messages(settings) == 0


def test_an_evaluations_result_and_the_projects_list(
    client: TestClient,
    db: Session,
    world: Registry,
    as_researcher: dict[str, str],
) -> None:
    evaluation = hand_worked(db, world)
    response = client.get(f"{API}/evaluations/{evaluation.id}", headers=as_researcher)
    assert response.status_code == 200, response.text
    found = response.json()
    assert (found["run_id"], found["run_status"]) == (None, None)
    result = found["result"]
    assert (result["wins"], result["ties"], result["losses"]) == (3, 1, 1)
    assert (result["judgements"], result["tasks_judged"], result["tasks_total"]) == (5, 3, 4)
    assert result["win_rate"] == pytest.approx(0.7)
    assert result["ci_low"] == pytest.approx(0.20956, abs=1e-5)
    assert result["ci_high"] == pytest.approx(0.95357, abs=1e-5)

    listed = client.get(f"{API}/projects/{world.project.id}/evaluations", headers=as_researcher)
    assert listed.status_code == 200
    assert listed.json() == [found]

    unknown = client.get(f"{API}/evaluations/987654", headers=as_researcher)
    assert unknown.status_code == 404
    assert unknown.json() == error("not_found", "no evaluation with id 987654")


def test_a_projects_rounds(
    client: TestClient,
    db: Session,
    world: Registry,
    as_researcher: dict[str, str],
) -> None:
    run = Run(
        project_id=world.project.id,
        kind=RunKind.sft,
        status=RunStatus.succeeded,
        base_model_id=world.base.id,
        output_model_id=world.sft.id,
        hyperparameters={},
    )
    db.add(run)
    db.commit()
    response = client.get(f"{API}/projects/{world.project.id}/rounds", headers=as_researcher)
    assert response.status_code == 200, response.text
    (only,) = response.json()
    assert only["number"] == 0
    assert [(r["id"], r["kind"], r["output_model_id"]) for r in only["runs"]] == [
        (run.id, "sft", world.sft.id)
    ]
    assert only["models"] == [
        {"id": world.sft.id, "name": "sft-1", "role": "policy", "run_id": run.id}
    ]
    assert only["policies"] == [
        {
            "model_id": world.sft.id,
            "model_name": "sft-1",
            "run_id": run.id,
            "start_model_id": world.base.id,
            "start_model_name": "base",
            "human": None,
            "reward_model_win_rate": None,
        }
    ]
    assert (only["data"]["demonstrations"], only["data"]["comparisons"]) == (0, 0)
    unknown = client.get(f"{API}/projects/987654/rounds", headers=as_researcher)
    assert unknown.status_code == 404


def test_labelers_may_not_start_or_read_evaluations(
    client: TestClient,
    db: Session,
    world: Registry,
    labeler: User,
) -> None:
    evaluation = hand_worked(db, world)
    headers = bearer(make_token(db, labeler))
    before = counts(db)
    project: Project = world.project
    body = {"model_a_id": world.sft.id, "model_b_id": world.base.id, "snapshot_id": 1}
    for method, path in (
        ("POST", f"{API}/projects/{project.id}/evaluations"),
        ("GET", f"{API}/projects/{project.id}/evaluations"),
        ("GET", f"{API}/evaluations/{evaluation.id}"),
        ("GET", f"{API}/projects/{project.id}/rounds"),
    ):
        response = client.request(
            method, path, json=body if method == "POST" else None, headers=headers
        )
        assert response.status_code == 403, path
        assert response.json() == NEEDS_STAFF
    assert counts(db) == before
