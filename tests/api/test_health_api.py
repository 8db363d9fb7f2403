"""GET /healthz: the status for anyone (load balancers, compose), the details for admins."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Role, User, WorkerHeartbeat
from app.models.base import utcnow
from app.settings import Settings
from tests.api.helpers import Json, error
from tests.conftest import bearer, make_token, make_user, web_login
from worker.heartbeat import record_beat

WORKER = "celery@gpu-box-7"


@pytest.fixture
def healthy(db: Session, settings: Settings) -> None:
    """The embedded broker's folders and one worker's fresh heartbeat: every check is ok."""
    settings.ensure_data_dir()
    record_beat(db, WORKER, "default,gpu", utcnow())


def details(db: Session, settings: Settings, backend: str) -> Json:
    beat = db.get(WorkerHeartbeat, WORKER)
    assert beat is not None
    return {
        "status": "ok",
        "database": {"ok": True, "detail": backend, "extra": {}},
        "broker": {
            "ok": True,
            "detail": f"embedded (filesystem) at {settings.broker_dir}",
            "extra": {},
        },
        "worker": {
            "ok": True,
            "detail": "1 worker(s) alive",
            "extra": {
                "workers": [
                    {
                        "name": WORKER,
                        "queues": ["default", "gpu"],
                        "last_seen_at": beat.last_seen_at.isoformat(),
                        "alive": True,
                    }
                ]
            },
        },
    }


@pytest.mark.usefixtures("healthy")
def test_anonymous_gets_only_the_status(client: TestClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_anonymous_gets_503_and_only_the_status_when_degraded(
    client: TestClient, settings: Settings
) -> None:
    settings.ensure_data_dir()  # the broker is fine; no worker has ever sent a heartbeat

    response = client.get("/healthz")

    assert (response.status_code, response.json()) == (503, {"status": "degraded"})


@pytest.mark.usefixtures("healthy")
@pytest.mark.parametrize("role", [Role.labeler, Role.researcher])
def test_a_non_admin_gets_only_the_status_by_token_or_session(
    client: TestClient, db: Session, role: Role
) -> None:
    user = make_user(db, "asker", role)

    by_token = client.get("/healthz", headers=bearer(make_token(db, user)))
    web_login(client, user.username)
    by_session = client.get("/healthz")

    assert (by_token.status_code, by_token.json()) == (200, {"status": "ok"})
    assert (by_session.status_code, by_session.json()) == (200, {"status": "ok"})


@pytest.mark.usefixtures("healthy")
def test_an_admin_token_gets_every_detail(
    client: TestClient, db: Session, settings: Settings, admin: User, backend: str
) -> None:
    response = client.get("/healthz", headers=bearer(make_token(db, admin)))

    assert response.status_code == 200
    assert response.json() == details(db, settings, backend)


@pytest.mark.usefixtures("healthy")
def test_an_admins_browser_session_gets_every_detail(
    client: TestClient, db: Session, settings: Settings, admin: User, backend: str
) -> None:
    web_login(client, admin.username)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == details(db, settings, backend)


def test_an_admin_sees_why_it_is_degraded_with_the_same_503(
    client: TestClient, db: Session, settings: Settings, admin: User
) -> None:
    settings.ensure_data_dir()

    response = client.get("/healthz", headers=bearer(make_token(db, admin)))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["worker"] == {
        "ok": False,
        "detail": "no worker has sent a heartbeat recently",
        "extra": {"workers": []},
    }


@pytest.mark.usefixtures("healthy")
def test_a_wrong_token_is_refused_not_answered_as_anonymous(client: TestClient) -> None:
    response = client.get("/healthz", headers=bearer("smiley_not-a-token"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == error(
        "authentication_failed",
        "the API token is unknown, revoked, expired or its user inactive",
    )


def test_a_bad_probe_value_is_a_json_422(client: TestClient) -> None:
    response = client.get("/healthz?probe=maybe")

    assert response.status_code == 422
    found = response.json()["error"]
    assert (found["code"], found["field"], found["message"]) == (
        "invalid_request",
        "probe",
        "query.probe: Input should be a valid boolean, unable to interpret input",
    )
