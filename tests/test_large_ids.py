"""An id no row can have (beyond PostgreSQL's 32-bit integer columns) is a 404 on every route
that takes one, on both databases, never a 500 from an overflow in the driver."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.conftest import bearer, make_token, web_login
from tests.web.helpers import snapshot

HUGE = [2**31, -(2**31) - 1, 2**63, 2**70]
PARAM = re.compile(r"{(\w+)}")


def routes_with_ids(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        params = [
            name for name in PARAM.findall(route.path) if name.endswith("_id") or name == "version"
        ]
        if params:
            found.extend((method, route.path, params) for method in sorted(route.methods or ()))
    return sorted(found)


def expected_message(name: str, value: int) -> str:
    if name == "version":
        return f"no version {value}"
    return f"no {name.removesuffix('_id').replace('_', ' ')} with id {value}"


@pytest.mark.parametrize("value", HUGE)
def test_every_api_route_answers_404_for_an_id_out_of_range(
    app: FastAPI, client: TestClient, db: Session, admin: User, value: int
) -> None:
    headers = bearer(make_token(db, admin))
    routes = [route for route in routes_with_ids(app) if route[1].startswith("/api/")]
    assert len(routes) > 40
    before = snapshot(db)

    answers = {}
    expected = {}
    for method, path, params in routes:
        url = PARAM.sub(lambda match: str(value), path)
        response = client.request(method, url, headers=headers)
        answers[(method, path)] = (response.status_code, response.json())
        message = expected_message(params[0], value)
        expected[(method, path)] = (
            404,
            {"error": {"code": "not_found", "message": message, "field": None}},
        )

    assert answers == expected
    assert snapshot(db) == before


@pytest.mark.parametrize("value", HUGE)
def test_every_page_answers_404_for_an_id_out_of_range(
    app: FastAPI, client: TestClient, db: Session, admin: User, value: int
) -> None:
    csrf = web_login(client, admin.username)
    routes = [route for route in routes_with_ids(app) if not route[1].startswith("/api/")]
    assert len(routes) > 30
    before = snapshot(db)

    answers = {}
    for method, path, params in routes:
        url = PARAM.sub(lambda match: str(value), path)
        response = client.request(method, url, headers={"X-CSRF-Token": csrf})
        answers[(method, path)] = response.status_code
        assert expected_message(params[0], value) in response.text, (method, path)

    assert answers == {(method, path): 404 for method, path, _ in routes}
    assert snapshot(db) == before
