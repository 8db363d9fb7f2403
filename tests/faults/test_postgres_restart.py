"""PostgreSQL goes away under a running web app, then comes back.

The test runs a PostgreSQL cluster of its own (so stopping it disturbs nothing else) and the
real web app on it. While the database is down, the API answers 503 with a JSON error and the
web a short 503 page, both with the security headers, and nothing is half-written. Once it is
back the very same requests succeed, without restarting the web app: the engine's pre-ping
replaces the connections the restart killed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import migrate
from app.db import make_engine
from app.models import Assignment, AssignmentStatus, Comparison, Pair, QueueKind
from app.unavailable import MESSAGE, PAGE
from app.web.security_headers import SECURITY_HEADERS
from tests.conftest import make_token, make_user, web_login
from tests.factories import make_comparison_tasks, make_project, make_queue
from tests.faults.conftest import PostgresCluster, WebServer, postgres_bin_dir

# One group: each starts private servers on free ports and times windows of a few seconds.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

API = "/api/v1"


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(postgres_bin_dir(), Path(tempfile.mkdtemp(prefix="smiley-pg-")))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(cluster.directory)


def assert_unavailable_json(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json() == {
        "error": {"code": "database_unavailable", "message": MESSAGE, "field": None}
    }
    assert answer.headers["Retry-After"] == "5"
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value


def test_postgres_down_answers_503_and_back_up_the_same_requests_succeed(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    migrate.upgrade(cluster.url)
    engine = make_engine(cluster.url)
    with Session(engine, expire_on_commit=False) as db:
        project = make_project(db)
        queue = make_queue(db, project, QueueKind.comparison)
        make_comparison_tasks(db, queue, project, 3, 2)
        labeler = make_user(db, "lena")
        token = make_token(db, labeler)
    engine.dispose()
    headers = {"Authorization": f"Bearer {token}"}

    server = WebServer(tmp_path / "data", cluster.url)
    server.start()
    try:
        api = httpx.Client(base_url=server.base_url + API, headers=headers, timeout=10)
        web = httpx.Client(base_url=server.base_url, timeout=10)
        web_login(web, "lena")  # type: ignore[arg-type]
        assert web.get("/").status_code == 200

        assignment = api.post(f"/queues/{queue.id}/lease").json()["assignment"]
        submit_path = f"/assignments/{assignment['id']}/comparison"
        body = {
            "items": [
                {"response_id": response["id"], "score": 5 - rank, "rank": rank}
                for rank, response in enumerate(assignment["responses"], start=1)
            ],
            "idempotency_key": "restart-1",
        }

        cluster.stop("immediate")
        assert_unavailable_json(api.post(submit_path, json=body))
        assert_unavailable_json(api.post(f"/queues/{queue.id}/lease"))
        assert_unavailable_json(api.get("/assignments"))
        page = web.get("/")
        assert page.status_code == 503
        assert page.headers["content-type"].startswith("text/plain")
        assert page.text == PAGE
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value

        # Back up, the web app untouched: the same submit is taken, once.
        cluster.start()
        first = api.post(submit_path, json=body)
        assert first.status_code == 201, first.text
        assert (first.json()["replayed"], first.json()["pairs"]) == (False, 1)
        assert api.post(submit_path, json=body).json()["replayed"] is True
        assert web.get("/").status_code == 200

        # A restart between two requests (the pool's connections all die with it) is not even
        # noticed: the pre-ping reconnects before the next request uses a connection.
        cluster.stop("immediate")
        cluster.start()
        second = api.post(f"/queues/{queue.id}/lease")
        assert second.status_code == 200, second.text
        assert second.json()["assignment"]["id"] != assignment["id"]
        assert server.starts == 1
    finally:
        server.stop()

    engine = make_engine(cluster.url)
    with Session(engine) as db:
        assert list(db.scalars(select(Comparison.idempotency_key))) == ["restart-1"]
        assert db.scalar(select(func.count()).select_from(Pair)) == 1
        statuses = sorted(status.value for status in db.scalars(select(Assignment.status)))
        assert statuses == sorted([AssignmentStatus.submitted.value, AssignmentStatus.active.value])
    engine.dispose()
