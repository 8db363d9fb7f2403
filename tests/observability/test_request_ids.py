"""Request ids: taken from a sane incoming header or made, echoed, and on every log record."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from app.observability.context import SANE_REQUEST_ID
from app.observability.logging import JsonFormatter
from tests.conftest import bearer, make_token

inside = logging.getLogger("smiley.test.inside")


@pytest.fixture
def app(private_app: FastAPI) -> FastAPI:
    """An app of this module's own: its tests add routes to it."""
    return private_app


def _add_probe_routes(app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/api/v1/test-probe/{thing_id}")
    def probe(thing_id: int) -> dict[str, int]:
        inside.warning("probing %s", thing_id)
        return {"thing_id": thing_id}

    @router.get("/api/v1/test-boom")
    def boom() -> None:
        raise RuntimeError("boom for the test")

    app.include_router(router)


def test_a_sane_incoming_id_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert response.headers["X-Request-ID"] == "abc.DEF_123-x"


def test_an_id_is_made_when_none_is_sent(client: TestClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert SANE_REQUEST_ID.fullmatch(first)
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize(
    "bad", ["a" * 65, "has space", "semi;colon", 'quote"', "new\\nline", "ünïcode".encode(), ""]
)
def test_a_bad_incoming_id_is_replaced(client: TestClient, bad: str | bytes) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": bad})
    echoed = response.headers["X-Request-ID"]
    assert echoed != bad
    assert len(echoed) == 32 and SANE_REQUEST_ID.fullmatch(echoed)


def test_every_record_of_a_request_carries_its_id(
    app: FastAPI,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    admin: User,
    db: Session,
) -> None:
    _add_probe_routes(app)
    token = make_token(db, admin)
    with caplog.at_level(logging.INFO):
        response = client.get(
            "/api/v1/test-probe/7", headers={"X-Request-ID": "req-one", **bearer(token)}
        )
        client.get("/api/v1/test-probe/8", headers={"X-Request-ID": "req-two"})
    assert response.json() == {"thing_id": 7}
    mine = [record for record in caplog.records if record.name.startswith("smiley.")]
    assert [(r.name, r.request_id) for r in mine] == [
        ("smiley.test.inside", "req-one"),
        ("smiley.access", "req-one"),
        ("smiley.test.inside", "req-two"),
        ("smiley.access", "req-two"),
    ]
    access = mine[1]
    assert access.method == "GET"
    assert access.route == "/api/v1/test-probe/{thing_id}"
    assert access.status == 200
    assert access.duration_ms >= 0
    # Records made outside any request carry no id.
    outside = logging.getLogger("smiley.test.outside").makeRecord(
        "smiley.test.outside", logging.INFO, __file__, 1, "after", None, None
    )
    assert outside.request_id is None


def test_unmatched_paths_are_logged_under_one_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="smiley.access"):
        client.get("/api/v1/no-such-thing/123", headers={"X-Request-ID": "lost"})
    (access,) = [r for r in caplog.records if r.name == "smiley.access"]
    assert (access.route, access.status, access.request_id) == ("unmatched", 404, "lost")


def test_an_unhandled_error_is_logged_with_the_request_id(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    _add_probe_routes(app)
    client = TestClient(app, raise_server_exceptions=False)
    with client, caplog.at_level(logging.INFO):
        response = client.get("/api/v1/test-boom", headers={"X-Request-ID": "boom-1"})
    assert (response.status_code, response.headers["X-Request-ID"]) == (500, "boom-1")
    (error,) = [r for r in caplog.records if r.name == "smiley.errors"]
    assert error.request_id == "boom-1"
    assert error.exc_info is not None and error.exc_info[0] is RuntimeError
    (access,) = [r for r in caplog.records if r.name == "smiley.access"]
    assert (access.status, access.route) == (500, "/api/v1/test-boom")


def test_json_lines_parse(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    _add_probe_routes(app)
    with caplog.at_level(logging.INFO):
        client.get("/api/v1/test-probe/5", headers={"X-Request-ID": "json-1"})
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records if r.name.startswith("smiley.")]
    parsed = [json.loads(line) for line in lines]
    assert all("\n" not in line for line in lines)
    assert [(p["logger"], p["request_id"]) for p in parsed] == [
        ("smiley.test.inside", "json-1"),
        ("smiley.access", "json-1"),
    ]
    assert parsed[0]["message"] == "probing 5"
    assert parsed[0]["level"] == "WARNING"
    access = parsed[1]
    assert {k: access[k] for k in ("method", "route", "status", "user_id")} == {
        "method": "GET",
        "route": "/api/v1/test-probe/{thing_id}",
        "status": 200,
        "user_id": None,
    }
    assert isinstance(access["duration_ms"], float)
