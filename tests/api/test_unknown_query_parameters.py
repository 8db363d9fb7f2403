"""A query parameter a route does not take is refused with 422 naming it, on every API route
(`app.deps.known_query_parameters`): a misspelt filter must not answer as if it were absent."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from tests.api.helpers import API
from tests.conftest import bearer, make_token


def api_operations(app: FastAPI) -> list[tuple[str, str]]:
    operations = []
    for route in iter_route_contexts(app.routes):
        # The schema and its viewer (app/api/openapi.py, app/web/api_docs.py) are documents,
        # outside the API router and its checks.
        if route.path in (f"{API}/openapi.json", f"{API}/docs"):
            continue
        if isinstance(route.original_route, APIRoute) and route.path.startswith(API):
            # Any id will do: the parameter is refused before the route looks anything up.
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            operations += [(method, path) for method in sorted(route.methods or ())]
    return operations


def test_every_api_route_refuses_an_unknown_query_parameter_naming_it(
    app: FastAPI, client: TestClient, db: Session, admin: User
) -> None:
    headers = bearer(make_token(db, admin))
    operations = api_operations(app)
    assert len(operations) > 80
    for method, path in operations:
        answer = client.request(method, path, params={"order_by": "password_hash"}, headers=headers)
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.json() == {
            "error": {
                "code": "invalid_request",
                "message": "query.order_by: this route takes no such query parameter",
                "field": "order_by",
                "problems": [
                    {
                        "location": "query.order_by",
                        "message": "this route takes no such query parameter",
                        "type": "unknown_query_parameter",
                    }
                ],
            }
        }, (method, path)


def test_a_routes_own_parameters_pass_and_a_misspelt_one_is_named(
    client: TestClient, db: Session, admin: User
) -> None:
    headers = bearer(make_token(db, admin))
    known = {"task_name": "worker.tasks.run_training", "limit": 5}
    assert client.get(f"{API}/admin/task-events", params=known, headers=headers).json() == []
    misspelt = client.get(
        f"{API}/admin/task-events", params={"task": "x", "limit": 5}, headers=headers
    )
    assert misspelt.status_code == 422
    assert misspelt.json()["error"]["field"] == "task"
    # An aliased parameter (`from`/`to` on the guideline diff) counts by the name clients send.
    diff = client.get(
        f"{API}/projects/1/guidelines/diff", params={"from": 1, "to": 2}, headers=headers
    )
    assert diff.status_code == 404
