"""AI judges in the browser: beside the labelers on the agreement page (the hand-worked world
of tests/judge_world.py), sending its disagreements back, the launch form, the template
versions and the judge run's page."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ModelRole, Run, RunKind, Task, User
from app.services.agreement.reliability import CACHE
from app.settings import Settings
from tests.conftest import web_login
from tests.judge_world import JudgeWorld, build_judge_world
from tests.training_factories import make_model
from tests.web.helpers import snapshot


@pytest.fixture
def world(db: Session, settings: Settings) -> JudgeWorld:
    CACHE.clear()
    return build_judge_world(db, settings.data_dir)


def texts(name: str, page: str) -> list[str]:
    """The text of every element with data-testid=name, tags stripped."""
    found = re.findall(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", body)).split()) for _, body in found]


def test_the_agreement_page_shows_the_judge_beside_the_labelers(
    client: TestClient, world: JudgeWorld, researcher: User
) -> None:
    web_login(client, researcher.username)
    page = client.get(f"/projects/{world.project.id}/agreement").text
    assert texts("judge-overall", page) == ["60.0% [23.1%, 88.2%] · 3 / 5 pairs, 3 tasks"]
    assert texts("judge-category", page) == [
        "brainstorming: 100.0% [20.7%, 100.0%] · 1 / 1 pairs, 1 tasks",
        "chat: 50.0% [15.0%, 85.0%] · 2 / 4 pairs, 2 tasks",
    ]
    assert texts("judge-queue", page) == [
        "main: 50.0% [15.0%, 85.0%] · 2 / 4 pairs, 2 tasks",
        "side: 100.0% [20.7%, 100.0%] · 1 / 1 pairs, 1 tasks",
    ]
    t1, t2 = world.tasks[0].id, world.tasks[1].id
    assert re.findall(r'name="task_id" value="(\d+)"', page) == [str(t1), str(t2)]
    # The labelers' table lists the three people, not the judge.
    assert len(re.findall(r'data-testid="labeler-row"', page)) == 3


def test_the_ticked_disagreements_go_back_for_a_human_label(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    csrf = web_login(client, researcher.username)
    url = f"/projects/{world.project.id}/agreement/judges/send-back"
    before = snapshot(db)
    refused = client.post(url, data={"csrf_token": csrf})
    assert refused.status_code == 422
    assert snapshot(db) == before
    t1 = world.tasks[0].id
    answer = client.post(url, data={"csrf_token": csrf, "task_id": [str(t1)]})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/projects/{world.project.id}/agreement#judges"
    db.expire_all()
    assert db.get(Task, t1).overlap == 4
    assert db.get(Task, world.tasks[1].id).overlap == 3


def test_a_judge_run_is_launched_from_a_queue(
    client: TestClient, db: Session, settings: Settings, world: JudgeWorld, researcher: User
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, project=world.project)
    db.commit()
    csrf = web_login(client, researcher.username)
    queue_page = client.get(f"/queues/{world.main.id}").text
    assert f'href="/projects/{world.project.id}/judge?queue_id={world.main.id}"' in queue_page
    form = client.get(f"/projects/{world.project.id}/judge?queue_id={world.main.id}").text
    assert f'<option value="{world.main.id}" selected>' in form
    before = snapshot(db)
    refused = client.post(
        f"/projects/{world.project.id}/judge",
        data={"csrf_token": csrf, "model_id": str(reward.id), "queue_id": str(world.main.id),
              "template_version": "1"},
    )  # fmt: skip
    assert refused.status_code == 422
    assert texts("error-template_version", refused.text) == [
        "a reward model is not prompted: template_version is for generative judges"
    ]
    assert snapshot(db) == before
    answer = client.post(
        f"/projects/{world.project.id}/judge",
        data={"csrf_token": csrf, "model_id": str(reward.id), "queue_id": str(world.main.id)},
    )
    assert answer.status_code == 303, answer.text
    run = db.scalar(select(Run).where(Run.base_model_id == reward.id))
    assert run is not None and run.kind == RunKind.judge
    assert answer.headers["location"] == f"/runs/{run.id}"


def test_the_judge_runs_page_counts_its_labels_and_parse_failures(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    world.run.metrics = {"eval": world.counts}
    db.commit()
    web_login(client, researcher.username)
    page = client.get(f"/runs/{world.run.id}").text
    assert texts("judge-counts", page) == [
        "3 AI labels stored; 1 replies did not parse and were skipped (of 4 tasks)."
    ]


def test_judge_templates_are_saved_as_versions(
    client: TestClient, db: Session, world: JudgeWorld, researcher: User
) -> None:
    csrf = web_login(client, researcher.username)
    url = f"/projects/{world.project.id}/judge-templates"
    refused = client.post(url, data={"csrf_token": csrf, "body": "No answers.", "note": ""})
    assert refused.status_code == 422
    assert texts("error-body", refused.text) == [
        "the template must show the answers: put {responses} where they go"
    ]
    saved = client.post(url, data={"csrf_token": csrf, "body": "Rank {responses}.", "note": "v2"})
    assert saved.status_code == 303
    page = client.get(url).text
    versions = r'<tr data-testid="template-row"><td>(v\d+)</td><td>([^<]*)</td>'
    assert re.findall(versions, page) == [
        ("v2", "v2"), ("v1", "—"),
    ]  # fmt: skip
