"""/api/v1 judges: the judge against the people, sending tasks back, the template versions.
The figures are worked out by hand in tests/judge_world.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import ModelRole, Task, User
from app.services.agreement.reliability import CACHE
from app.settings import Settings
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token
from tests.judge_world import JudgeWorld, build_judge_world
from tests.training_factories import make_model


@pytest.fixture
def world(db: Session, settings: Settings) -> JudgeWorld:
    CACHE.clear()
    return build_judge_world(db, settings.data_dir)


def test_staff_read_each_judge_beside_the_people(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    answer = client.get(
        f"{API}/projects/{world.project.id}/agreement/judges",
        headers=bearer(make_token(db, researcher)),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    [judge] = body["judges"]
    assert {k: judge["overall"][k] for k in ("tasks", "pairs", "agreeing", "agreement")} == {
        "tasks": 3, "pairs": 5, "agreeing": 3, "agreement": 0.6,
    }  # fmt: skip
    assert (judge["model_name"], judge["mode"], judge["template_version"]) == (
        "judge-lm", "generative", 1,
    )  # fmt: skip
    assert [d["task_id"] for d in judge["disagreements"]] == [t.id for t in world.tasks[:2]]
    assert [(c["category"], c["agreement"]) for c in judge["categories"]] == [
        ("brainstorming", 1.0), ("chat", 0.5),
    ]  # fmt: skip


def test_a_labeler_may_not_read_the_judges(
    client: TestClient, db: Session, world: JudgeWorld, labeler: User
) -> None:
    answer = client.get(
        f"{API}/projects/{world.project.id}/agreement/judges",
        headers=bearer(make_token(db, labeler)),
    )
    assert answer.status_code == 403
    assert answer.json() == error("permission_denied", "this needs the admin or researcher role")


def test_disagreements_go_back_for_a_human_label_all_or_none(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    headers = bearer(make_token(db, researcher))
    url = f"{API}/projects/{world.project.id}/agreement/judges/send-back"
    t1, t2 = world.tasks[0].id, world.tasks[1].id
    refused = client.post(url, json={"task_ids": [t1, 999999]}, headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json() == error(
        "invalid_input", f"no task with id 999999 in project {world.project.id}", "task_ids"
    )
    db.expire_all()
    assert db.get(Task, t1).overlap == 3
    answer = client.post(url, json={"task_ids": [t2, t1]}, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"task_ids": [t1, t2]}
    db.expire_all()
    assert [db.get(Task, t).overlap for t in (t1, t2)] == [4, 4]


def test_judge_templates_are_versioned(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    headers = bearer(make_token(db, researcher))
    url = f"{API}/projects/{world.project.id}/judge-templates"
    made = client.post(url, json={"body": "Rank {responses}.", "note": "short"}, headers=headers)
    assert made.status_code == 201, made.text
    assert (made.json()["version"], made.json()["body"], made.json()["note"]) == (
        2, "Rank {responses}.", "short",
    )  # fmt: skip
    refused = client.post(url, json={"body": "Rank them."}, headers=headers)
    assert refused.json() == error(
        "invalid_input", "the template must show the answers: put {responses} where they go",
        "body",
    )  # fmt: skip
    listed = client.get(url, headers=headers).json()
    assert [row["version"] for row in listed] == [2, 1]


def test_a_judge_run_is_launched_like_any_run(
    client: TestClient, db: Session, settings: Settings, world: JudgeWorld, researcher: User
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, project=world.project)
    db.commit()
    answer = client.post(
        f"{API}/projects/{world.project.id}/runs",
        json={"kind": "judge", "base_model_id": reward.id,
              "hyperparameters": {"queue_id": world.side.id}},
        headers=bearer(make_token(db, researcher)),
    )  # fmt: skip
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["kind"], body["base_model_id"], body["hyperparameters"]["mode"]) == (
        "judge", reward.id, "reward",
    )  # fmt: skip
    assert body["hyperparameters"]["queue_id"] == world.side.id
