"""GET /metrics: admins only; request counters and gauges read from the database."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    Demonstration,
    LabelSource,
    Role,
    RunKind,
    RunStatus,
    User,
    WorkerHeartbeat,
)
from app.models.base import utcnow
from app.settings import Settings
from tests.conftest import bearer, make_token, make_user, web_login
from tests.factories import make_comparison_tasks, make_project, make_prompt, make_queue
from tests.training_factories import make_model, make_run, make_snapshot


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client: TestClient, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_anonymous_gets_401(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_a_wrong_token_gets_401(client: TestClient) -> None:
    assert client.get("/metrics", headers=bearer("not-a-token")).status_code == 401


def test_labeler_and_researcher_get_403(client: TestClient, db: Session) -> None:
    for name, role in (("lab", Role.labeler), ("res", Role.researcher)):
        token = make_token(db, make_user(db, name, role))
        assert client.get("/metrics", headers=bearer(token)).status_code == 403


def test_a_labelers_browser_session_gets_403(client: TestClient, labeler: User) -> None:
    web_login(client, labeler.username)
    assert client.get("/metrics").status_code == 403


def test_an_admins_browser_session_reads_them(client: TestClient, admin: User) -> None:
    web_login(client, admin.username)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "smiley_http_requests_total" in response.text


def test_request_counters_count_exactly(client: TestClient, db: Session, admin: User) -> None:
    token = make_token(db, admin)
    for _ in range(3):
        assert client.get("/healthz").status_code in (200, 503)
    status = client.get("/healthz").status_code
    client.get("/api/v1/queues/5", headers=bearer(token))
    client.get("/api/v1/queues/6", headers=bearer(token))
    client.get("/nothing-here")
    found = scrape(client, token)
    key = "smiley_http_requests_total"
    assert found[(key, (("method", "GET"), ("route", "/healthz"), ("status", str(status))))] == 4
    assert (
        found[(key, (("method", "GET"), ("route", "/api/v1/queues/{queue_id}"), ("status", "404")))]
        == 2
    )
    assert found[(key, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    # The scrape counts itself only once it has answered.
    assert not any(k[0] == key and ("route", "/metrics") in k[1] for k in found)
    latency = "smiley_http_request_duration_seconds_count"
    assert found[(latency, (("method", "GET"), ("route", "/healthz")))] == 4
    again = scrape(client, token)
    assert again[(key, (("method", "GET"), ("route", "/metrics"), ("status", "200")))] == 1


def test_gauges_read_from_the_database(
    client: TestClient, db: Session, admin: User, settings: Settings
) -> None:
    token = make_token(db, admin)
    project = make_project(db, creator=admin)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 3)
    prompt = make_prompt(db, project, "label me")
    now = utcnow()
    for minutes_ago in (0, 0, 5):
        db.add(
            Demonstration(
                prompt_id=prompt.id,
                source=LabelSource.imported,
                messages=[{"role": "assistant", "content": "hi"}],
                created_at=now - timedelta(minutes=minutes_ago),
            )
        )
    db.add(
        Comparison(
            prompt_id=prompt.id,
            source=LabelSource.imported,
            created_at=now - timedelta(minutes=10),
        )
    )
    base = make_model(db, settings)
    snapshot = make_snapshot(db, settings, project)
    make_run(db, project, base, snapshot)
    make_run(db, project, base, snapshot)
    failed = make_run(db, project, base, snapshot, RunKind.dpo)
    failed.status = RunStatus.failed
    failed.error = "out of memory"
    for name, seconds_ago in (("fresh@host", 1), ("stale@host", 3600)):
        seen = now - timedelta(seconds=seconds_ago)
        db.add(
            WorkerHeartbeat(
                name=name,
                hostname="host",
                pid=1,
                queues="default",
                started_at=seen,
                last_seen_at=seen,
            )
        )
    db.commit()

    found = scrape(client, token)
    assert found[("smiley_labels", (("kind", "demonstration"),))] == 3
    assert found[("smiley_labels", (("kind", "comparison"),))] == 1
    assert found[("smiley_labels_last_minute", (("kind", "demonstration"),))] == 2
    assert found[("smiley_labels_last_minute", (("kind", "comparison"),))] == 0
    queue_labels = (("project_id", str(project.id)), ("queue_id", str(queue.id)))
    assert (
        found[
            ("smiley_queue_assignments", (*queue_labels[:1], *queue_labels[1:], ("state", "left")))
        ]
        == 3
    )
    assert {
        labels[-1][1]: value
        for (name, labels), value in found.items()
        if name == "smiley_queue_assignments"
    } == {"left": 3, "in_progress": 0, "done": 0}
    runs = {labels: value for (name, labels), value in found.items() if name == "smiley_runs"}
    assert runs == {
        (("kind", "dpo"), ("status", "failed")): 1,
        (("kind", "sft"), ("status", "queued")): 2,
    }
    assert [k for k in found if k[0] == "smiley_dataset_jobs"] == []
    assert found[("smiley_workers_alive", ())] == 1
