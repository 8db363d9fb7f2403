"""The reward model audit page and a response's lineage page: staff see them and act from
them (CSRF-checked), labelers get 403. The figures are worked out in
tests/services/test_audit.py and test_lineage.py."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Run, RunKind, Task, User
from app.services.tasks import response_ids_by_task
from app.settings import Settings
from tests.conftest import csrf_from, web_login
from tests.services.test_audit import AuditWorld, build_audit_world
from tests.services.test_lineage import build_lineage_world


@pytest.fixture
def world(db: Session, settings: Settings) -> AuditWorld:
    return build_audit_world(db, settings)


def by_testid(name: str, page: str) -> str:
    found = re.findall(rf'data-testid="{name}"[^>]*>(.*?)</', page, re.S)
    assert len(found) == 1, (name, found)
    return " ".join(html.unescape(found[0]).split())


def rows(page: str) -> list[tuple[str, str]]:
    """(winner, loser) response ids of the disagreement rows, in order."""
    return re.findall(r'data-testid="disagreement" data-winner="(\d+)" data-loser="(\d+)"', page)


def audit_url(world: AuditWorld) -> str:
    return f"/projects/{world.project.id}/models/{world.reward.id}/audit"


def review_tasks(db: Session, world: AuditWorld) -> list[list[int]]:
    ids = list(db.scalars(select(Task.id).where(Task.queue_id == world.review.id)))
    return sorted(response_ids_by_task(db, ids).values())


def test_the_audit_page_shows_the_figures_disagreements_and_score_button(
    client: TestClient, world: AuditWorld, researcher: User
) -> None:
    web_login(client, researcher.username)
    page = client.get(audit_url(world))
    assert page.status_code == 200, page.text
    assert by_testid("agreement-rate", page.text) == "33.3%"
    assert by_testid("agreement-n", page.text) == "2 of 6 pairs checked"
    assert by_testid("disagreeing-pairs", page.text) == "4"
    assert by_testid("not-scored-pairs", page.text) == "1"
    assert by_testid("needs-score-run", page.text).startswith("1 judged pairs have no score")
    assert 'data-testid="score-run"' in page.text
    r = world.r
    expected = [("a2", "b2"), ("b4", "c4"), ("a4", "c4"), ("b3", "a3")]
    assert rows(page.text) == [(str(r[w]), str(r[lo])) for w, lo in expected]
    assert re.findall(r'data-testid="support-count">([^<]*)<', page.text) == [
        "2 of 3",
        "3 of 3",
        "3 of 3",
        "3 of 3",
    ]
    # The queue choice offers the project's comparison queues only.
    options = re.findall(r'<option value="(\d+)">([^<]*)</option>', page.text)
    assert options == [(str(world.chat.id), "chat"), (str(world.review.id), "review")]


def test_queueing_ticked_pairs_and_then_all_of_them(
    client: TestClient, db: Session, world: AuditWorld, admin: User
) -> None:
    csrf = web_login(client, admin.username)
    r = world.r
    url = audit_url(world) + "/requeue"
    ticked = {
        "csrf_token": csrf,
        "queue_id": str(world.review.id),
        "scope": "selected",
        "pair": [f"{r['a2']}-{r['b2']}", f"{r['b3']}-{r['a3']}"],
    }
    response = client.post(url, data=ticked)
    assert response.status_code == 303
    assert response.headers["location"] == audit_url(world)
    notice = client.get(audit_url(world)).text
    assert by_testid("notice", notice) == (
        "Queued 2 pairs for another look; 0 already had a task in that queue."
    )
    assert review_tasks(db, world) == sorted([[r["a2"], r["b2"]], [r["a3"], r["b3"]]])

    everything = {"csrf_token": csrf, "queue_id": str(world.review.id), "scope": "all"}
    assert client.post(url, data=everything).status_code == 303
    assert by_testid("notice", client.get(audit_url(world)).text) == (
        "Queued 2 pairs for another look; 2 already had a task in that queue."
    )
    assert len(review_tasks(db, world)) == 4


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"scope": "selected"}, "tick at least one pair, or queue all of them"),
        ({"scope": "selected", "pair": "12-x"}, "'12-x' does not name a response pair"),
        ({"scope": "all", "queue_id": ""}, "choose the comparison queue for the pairs"),
        ({"scope": "everything"}, "scope must be selected or all"),
        ({"scope": "all", "queue_id": "demos"}, "is a demonstration queue"),
    ],
)
def test_a_bad_requeue_form_shows_why_and_queues_nothing(
    client: TestClient, db: Session, world: AuditWorld, admin: User, form: dict, message: str
) -> None:
    csrf = web_login(client, admin.username)
    posted = {"csrf_token": csrf, "queue_id": str(world.review.id), **form}
    if posted["queue_id"] == "demos":
        posted["queue_id"] = str(world.demos.id)
    before = db.scalar(select(func.count()).select_from(Task))
    response = client.post(audit_url(world) + "/requeue", data=posted)
    assert response.status_code == 422
    assert message in by_testid("audit-error", response.text)
    assert db.scalar(select(func.count()).select_from(Task)) == before


def test_the_requeue_form_needs_the_csrf_token(
    client: TestClient, db: Session, world: AuditWorld, admin: User
) -> None:
    web_login(client, admin.username)
    form = {"queue_id": str(world.review.id), "scope": "all", "csrf_token": "forged"}
    response = client.post(audit_url(world) + "/requeue", data=form)
    assert response.status_code == 403
    assert review_tasks(db, world) == []


def test_the_score_button_queues_a_score_run(
    client: TestClient, db: Session, world: AuditWorld, researcher: User
) -> None:
    web_login(client, researcher.username)
    csrf = csrf_from(client.get(audit_url(world)).text)
    response = client.post(audit_url(world) + "/score", data={"csrf_token": csrf})
    assert response.status_code == 303, response.text
    run = db.scalar(select(Run).order_by(Run.id.desc()))
    assert run is not None and response.headers["location"] == f"/runs/{run.id}"
    assert (run.kind, run.reward_model_id) == (RunKind.score, world.reward.id)


def test_labelers_get_403_on_every_audit_and_lineage_page(
    client: TestClient, db: Session, world: AuditWorld, labeler: User
) -> None:
    csrf = web_login(client, labeler.username)
    assert client.get(audit_url(world)).status_code == 403
    assert client.get(f"/responses/{world.r['a1']}/lineage").status_code == 403
    form = {"csrf_token": csrf, "queue_id": str(world.review.id), "scope": "all"}
    assert client.post(audit_url(world) + "/requeue", data=form).status_code == 403
    assert client.post(audit_url(world) + "/score", data={"csrf_token": csrf}).status_code == 403
    assert review_tasks(db, world) == []
    assert db.scalar(select(func.count()).select_from(Run)) == 0


def test_the_lineage_page_is_a_readable_tree(
    client: TestClient, db: Session, settings: Settings, researcher: User
) -> None:
    found = build_lineage_world(db, settings)
    web_login(client, researcher.username)
    page = client.get(f"/responses/{found.sampled.id}/lineage")
    assert page.status_code == 200, page.text
    text = page.text
    # policy, then under its PPO run the SFT model (and base), the reward model (and its SFT
    # model and base again).
    models = re.findall(r'data-testid="model" data-model-id="(\d+)"', text)
    ids = found.policy.id, found.sft.id, found.base.id, found.reward.id
    assert models == [str(i) for i in (ids[0], ids[1], ids[2], ids[3], ids[1], ids[2])]
    assert by_testid("generation-run", text).startswith("Sampled by")
    labelers = re.findall(r'data-testid="snapshot-labelers">(.*?)</li>', text, re.S)
    assert [" ".join(html.unescape(item).split()) for item in labelers] == [
        "Labelers: ann (2 rows), bob (1 rows); 1 rows without a labeler (imports, consensus)",
        "Labelers: ann (2 rows), bob (1 rows)",
        "Labelers: ann (2 rows), bob (1 rows); 1 rows without a labeler (imports, consensus)",
    ]
    missing = re.findall(r'data-testid="snapshot-missing">([^<]*)<', text)
    assert missing == [
        f"the snapshot&#39;s folder {found.prompts_snapshot.path} is missing from the data folder"
    ]

    human = client.get(f"/responses/{found.written.id}/lineage")
    assert by_testid("author", human.text) == "Written by bob"
    assert 'data-testid="model"' not in human.text
