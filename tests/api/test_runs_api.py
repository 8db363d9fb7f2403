"""/api/v1 runs and models: launch (checked before queueing), follow metrics, cancel, resume,
and the registry with its lineage tree. Staff only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Model, ModelRole, Project, Run, RunKind, SnapshotKind, User
from app.services import runs
from app.settings import Settings
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token
from tests.factories import make_project
from tests.training_factories import (
    make_model,
    make_run,
    make_snapshot,
    model_folder,
    queued_messages,
)

WORKER = "gpu@host"


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def run_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Run)) or 0


def test_launching_a_run_queues_it_with_its_hyperparameters(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={
            "kind": "dpo",
            "base_model_id": base.id,
            "snapshot_id": snapshot.id,
            "hyperparameters": {"beta": 0.2, "max_steps": 50},
        },
        headers=as_researcher,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["kind"], body["status"], body["attempts"], body["progress"]) == (
        "dpo",
        "queued",
        0,
        0.0,
    )
    assert body["hyperparameters"]["beta"] == 0.2
    assert body["hyperparameters"]["max_steps"] == 50
    assert body["hyperparameters"]["loss_type"] == "sigmoid"
    assert queued_messages(settings) == 1
    listed = client.get(f"{API}/projects/{project.id}/runs", headers=as_researcher).json()
    assert [run["id"] for run in listed] == [body["id"]]


def test_a_bad_config_is_refused_with_its_field_and_nothing_is_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    preference = make_snapshot(db, settings, project, SnapshotKind.preference)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={"kind": "sft", "base_model_id": base.id, "snapshot_id": preference.id},
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        f"snapshot {preference.id} is a preference snapshot; a sft run needs a sft snapshot",
        "snapshot_id",
    )
    sft = make_snapshot(db, settings, project, SnapshotKind.sft)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={
            "kind": "sft",
            "base_model_id": base.id,
            "snapshot_id": sft.id,
            "hyperparameters": {"learning_rate": -1},
        },
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        "hyperparameters.learning_rate: Input should be greater than 0",
        "hyperparameters.learning_rate",
    )
    assert (run_count(db), queued_messages(settings)) == (0, 0)


def test_metrics_follow_by_step_and_cancel_then_resume(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    researcher: User,
    as_researcher: dict[str, str],
) -> None:
    run = make_run(
        db,
        project,
        make_model(db, settings, "base"),
        make_snapshot(db, settings, project),
    )
    runs.claim_run(db, run.id, WORKER)
    for step, loss in ((10, 2.0), (20, 1.0)):
        runs.record_metrics(db, run.id, WORKER, step, {"loss": loss}, step / 40)
    rows = client.get(
        f"{API}/runs/{run.id}/metrics", params={"after_step": 10}, headers=as_researcher
    ).json()
    assert [(row["step"], row["values"]) for row in rows] == [(20, {"loss": 1.0})]
    shown = client.get(f"{API}/runs/{run.id}", headers=as_researcher).json()
    assert (shown["status"], shown["progress"], shown["metrics"]) == (
        "running",
        0.5,
        {"train": {"loss": 1.0, "step": 20}},
    )

    cancelled = client.post(f"{API}/runs/{run.id}/cancel", headers=as_researcher)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancel_requested"]) == (
        "running",
        True,
    )
    early = client.post(f"{API}/runs/{run.id}/resume", headers=as_researcher)
    assert early.status_code == 409
    assert early.json() == error(
        "conflict", f"run {run.id} is running; only failed or cancelled runs resume"
    )
    runs.fail_run(db, run.id, WORKER, error="worker lost", traceback=None)
    resumed = client.post(f"{API}/runs/{run.id}/resume", headers=as_researcher)
    assert resumed.status_code == 202
    assert (resumed.json()["status"], resumed.json()["error"]) == ("queued", None)
    assert queued_messages(settings) == 1


def test_models_register_refuse_pickles_and_nest_in_a_tree(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    folder = model_folder(settings.data_dir / "models", "mine")
    registered = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "mine", "path": str(folder)},
        headers=as_researcher,
    )
    assert registered.status_code == 201, registered.text
    mine = registered.json()
    assert (mine["name"], mine["role"], mine["path"], mine["run_id"]) == (
        "mine",
        "policy",
        str(folder),
        None,
    )
    again = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "mine", "path": str(folder)},
        headers=as_researcher,
    )
    assert again.status_code == 409
    assert again.json() == error("conflict", "a model named 'mine' already exists", "name")

    pickled = settings.data_dir / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    refused = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "pickled", "path": str(pickled)},
        headers=as_researcher,
    )
    assert refused.status_code == 422
    assert refused.json() == error(
        "invalid_input",
        f"{pickled} has no safetensors weights (pickled .bin checkpoints are not loaded)",
        "path",
    )

    base = db.get(Model, mine["id"])
    assert base is not None
    run = make_run(db, project, base, make_snapshot(db, settings, project), RunKind.sft)
    runs.claim_run(db, run.id, WORKER)
    runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={},
        model_dir=settings.data_dir / f"runs/{run.id}/model",
        role=ModelRole.policy,
        settings_used={},
        stopped=False,
    )
    tree = client.get(f"{API}/projects/{project.id}/models/tree", headers=as_researcher).json()
    assert [node["model"]["name"] for node in tree] == ["mine"]
    (child,) = tree[0]["children"]
    assert (child["model"]["name"], child["model"]["run_id"], child["children"]) == (
        f"run-{run.id}-sft",
        run.id,
        [],
    )


def test_labelers_cannot_launch_or_read_runs(
    client: TestClient, db: Session, project: Project, labeler: User
) -> None:
    as_labeler = bearer(make_token(db, labeler))
    needs_staff = error("permission_denied", "this needs the admin or researcher role")
    for method, path in (
        ("GET", f"{API}/projects/{project.id}/runs"),
        ("POST", f"{API}/projects/{project.id}/runs"),
        ("GET", f"{API}/projects/{project.id}/models"),
    ):
        response = client.request(method, path, headers=as_labeler, json={})
        assert (response.status_code, response.json()) == (403, needs_staff)
