"""Every JSON API route, classified by who may call it, checked against the app's real routes.

A route added under /api/ fails `test_every_api_route_is_classified` until it is put in exactly
one of ADMIN_ONLY, SIGNED_IN or PUBLIC below, with a minimal valid request for it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from app.models import Project, Role, User
from app.models.base import utcnow
from app.schemas.users import TokenCreate
from app.services import auth
from tests.api.helpers import API, Json, db_state, error, fill_path
from tests.conftest import PASSWORD, bearer, make_token, make_user

Endpoint = tuple[str, str]  # (HTTP method, path template as the app declares it)


@dataclass(frozen=True)
class Call:
    """A minimal valid request for an endpoint, and the status a permitted caller gets."""

    ok: int
    body: Json | None = None


ADMIN_ONLY: dict[Endpoint, Call] = {
    ("GET", f"{API}/users"): Call(200),
    ("POST", f"{API}/users"): Call(201, {"username": "newcomer"}),
    ("GET", f"{API}/users/{{user_id}}"): Call(200),
    ("PATCH", f"{API}/users/{{user_id}}"): Call(200, {"display_name": "Renamed"}),
    ("POST", f"{API}/users/{{user_id}}/reset-password"): Call(200),
    ("DELETE", f"{API}/users/{{user_id}}"): Call(204),
    ("POST", f"{API}/projects"): Call(201, {"name": "Brand new"}),
    ("PATCH", f"{API}/projects/{{project_id}}"): Call(200, {"description": "changed"}),
}
SIGNED_IN: dict[Endpoint, Call] = {
    ("GET", f"{API}/me"): Call(200),
    ("POST", f"{API}/me/password"): Call(
        204, {"current_password": PASSWORD, "new_password": "another long password"}
    ),
    ("GET", f"{API}/tokens"): Call(200),
    ("POST", f"{API}/tokens"): Call(201, {"name": "ci"}),
    ("DELETE", f"{API}/tokens/{{token_id}}"): Call(200),
    ("GET", f"{API}/projects"): Call(200),
    ("GET", f"{API}/projects/{{project_id}}"): Call(200),
}
# Reached without a token: it is how a script gets one.
PUBLIC: dict[Endpoint, Call] = {
    ("POST", f"{API}/auth/token"): Call(201, {"username": "lena", "password": PASSWORD}),
}
CLASSIFIED: dict[Endpoint, Call] = {**ADMIN_ONLY, **SIGNED_IN, **PUBLIC}
# Plain (non-API) routes FastAPI serves under the API prefix: the schema and its viewer.
DOCS_PATHS = {f"{API}/openapi.json", f"{API}/docs"}

NO_TOKEN = error("authentication_failed", "send an API token as 'Authorization: Bearer <token>'")
BAD_TOKEN = error(
    "authentication_failed", "the API token is unknown, revoked, expired or its user inactive"
)
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")


def api_endpoints(app: FastAPI) -> set[Endpoint]:
    """(method, path) of every APIRoute of the app under /api/, however it was included."""
    found: set[Endpoint] = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.path.startswith("/api/"):
            found |= {(method, route.path) for method in route.methods or ()}
    return found


def send(client: TestClient, endpoint: Endpoint, ids: dict[str, int], **headers: str) -> Response:
    method, template = endpoint
    return client.request(
        method, fill_path(template, ids), headers=headers, json=CLASSIFIED[endpoint].body
    )


@pytest.fixture
def victim(db: Session) -> User:
    """A labeler without work that admin-only routes may act on (and delete)."""
    return make_user(db, "victim")


@pytest.fixture
def project(db: Session) -> Project:
    project = Project(name="Existing", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def ids_for(caller: User, db: Session, victim: User, project: Project) -> dict[str, int]:
    """Existing ids for every path parameter; the token is one of the caller's own."""
    record, _ = auth.create_api_token(db, caller, TokenCreate(name="spare"))
    return {"user_id": victim.id, "project_id": project.id, "token_id": record.id}


# --- the classification matches the app -----------------------------------------------------


def test_every_api_route_is_classified(app: FastAPI) -> None:
    actual = api_endpoints(app)

    unclassified = sorted(actual - CLASSIFIED.keys())
    assert not unclassified, f"classify in ADMIN_ONLY, SIGNED_IN or PUBLIC: {unclassified}"
    stale = sorted(CLASSIFIED.keys() - actual)
    assert not stale, f"classified but gone from the app: {stale}"
    assert len(CLASSIFIED) == len(ADMIN_ONLY) + len(SIGNED_IN) + len(PUBLIC), "one class each"


def test_only_the_docs_are_plain_routes_under_the_api(app: FastAPI) -> None:
    plain = {
        route.path
        for route in iter_route_contexts(app.routes)
        if not isinstance(route.original_route, APIRoute) and (route.path or "").startswith("/api/")
    }

    assert plain == DOCS_PATHS


# --- no valid token: 401 everywhere ---------------------------------------------------------


@pytest.fixture(
    params=["missing", "not-bearer", "unknown", "revoked", "expired", "deactivated-admin"]
)
def bad_credentials(
    request: pytest.FixtureRequest, db: Session, admin: User
) -> tuple[dict[str, str], Json]:
    """Authorization headers that must get a 401 (even when the token was an admin's)."""
    kind = request.param
    if kind == "missing":
        return {}, NO_TOKEN
    if kind == "not-bearer":
        return {"Authorization": "Basic cm9vdC1hZG1pbjpjb3JyZWN0"}, NO_TOKEN
    if kind == "unknown":
        return bearer("smy_not-a-real-token"), BAD_TOKEN
    owner = (
        make_user(db, "old-admin", Role.admin, active=False)
        if kind == "deactivated-admin"
        else admin
    )
    record, token = auth.create_api_token(db, owner, TokenCreate(name="bad"))
    if kind == "revoked":
        record.revoked_at = utcnow()
    elif kind == "expired":
        record.expires_at = utcnow()
    db.commit()
    return bearer(token), BAD_TOKEN


def test_every_route_refuses_a_missing_or_bad_token(
    app: FastAPI,
    client: TestClient,
    db: Session,
    admin: User,
    victim: User,
    project: Project,
    bad_credentials: tuple[dict[str, str], Json],
) -> None:
    headers, expected = bad_credentials
    ids = ids_for(admin, db, victim, project)
    endpoints = sorted(api_endpoints(app) - PUBLIC.keys())
    before = db_state(db)

    answers = {}
    for endpoint in endpoints:
        response = send(client, endpoint, ids, **headers)
        answers[endpoint] = (
            response.status_code,
            response.json(),
            response.headers.get("www-authenticate"),
        )

    assert answers == {endpoint: (401, expected, "Bearer") for endpoint in endpoints}
    assert len(endpoints) == len(ADMIN_ONLY) + len(SIGNED_IN)
    assert db_state(db) == before


def test_public_route_needs_no_token(
    client: TestClient, db: Session, labeler: User, victim: User, project: Project
) -> None:
    for endpoint, call in PUBLIC.items():
        response = send(client, endpoint, ids_for(labeler, db, victim, project))
        assert response.status_code == call.ok, (endpoint, response.text)


# --- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["labeler", "researcher"])
@pytest.mark.parametrize("target", ["existing", "missing"])
def test_non_admins_get_403_on_every_admin_only_route(
    app: FastAPI,
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    role: str,
    target: str,
) -> None:
    """Refused before the ids are looked at: a 403 whether or not the target exists."""
    caller = make_user(db, f"caller-{role}", Role(role))
    headers = bearer(make_token(db, caller))
    ids = ids_for(caller, db, victim, project)
    if target == "missing":
        ids = {name: 999999 for name in ids}
    endpoints = sorted(api_endpoints(app) & ADMIN_ONLY.keys())
    before = db_state(db)

    answers = {}
    for endpoint in endpoints:
        response = send(client, endpoint, ids, **headers)
        answers[endpoint] = (response.status_code, response.json())

    assert answers == {endpoint: (403, NEEDS_ADMIN) for endpoint in endpoints}
    assert len(endpoints) == len(ADMIN_ONLY)
    assert db_state(db) == before


@pytest.mark.parametrize("endpoint", sorted(ADMIN_ONLY), ids=" ".join)
def test_admin_gets_through_every_admin_only_route(
    client: TestClient,
    db: Session,
    admin: User,
    victim: User,
    project: Project,
    endpoint: Endpoint,
) -> None:
    """The bodies above are valid: the 403s are about the role, not the request."""
    response = send(
        client, endpoint, ids_for(admin, db, victim, project), **bearer(make_token(db, admin))
    )

    assert response.status_code == ADMIN_ONLY[endpoint].ok, response.text


@pytest.mark.parametrize("role", ["labeler", "researcher", "admin"])
@pytest.mark.parametrize("endpoint", sorted(SIGNED_IN), ids=" ".join)
def test_every_role_gets_through_every_signed_in_route(
    client: TestClient,
    db: Session,
    victim: User,
    project: Project,
    endpoint: Endpoint,
    role: str,
) -> None:
    caller = make_user(db, f"caller-{role}", Role(role))

    response = send(
        client, endpoint, ids_for(caller, db, victim, project), **bearer(make_token(db, caller))
    )

    assert response.status_code == SIGNED_IN[endpoint].ok, response.text


def test_signed_in_token_routes_touch_only_ones_own_tokens(
    client: TestClient, db: Session, labeler: User, victim: User, project: Project
) -> None:
    """DELETE /tokens/{id} is open to everyone signed in, so it must check the owner."""
    theirs = ids_for(victim, db, victim, project)["token_id"]
    headers = bearer(make_token(db, labeler))
    before = db_state(db)

    response = client.delete(f"{API}/tokens/{theirs}", headers=headers)

    assert response.status_code == 404
    assert response.json() == error("not_found", f"no token with id {theirs}")
    assert db_state(db) == before


# --- routing and the schema -----------------------------------------------------------------


def test_openapi_lists_every_api_route_and_no_page(client: TestClient) -> None:
    response = client.get(f"{API}/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Smiley"
    documented = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert documented == CLASSIFIED.keys() | {("GET", "/healthz")}
    assert sorted(schema["paths"]) == [
        "/api/v1/auth/token",
        "/api/v1/me",
        "/api/v1/me/password",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/reset-password",
        "/healthz",
    ]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get(f"{API}/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f"{API}/openapi.json" in response.text


def test_unknown_api_path_is_a_json_404(client: TestClient) -> None:
    response = client.get(f"{API}/nothing-here")

    assert response.status_code == 404
    assert response.json() == error("not_found", "Not Found")


def test_wrong_method_is_a_json_405(client: TestClient, db: Session, admin: User) -> None:
    response = client.put(f"{API}/me", headers=bearer(make_token(db, admin)), json={})

    assert response.status_code == 405
    assert response.json() == error("http_error", "Method Not Allowed")
    assert response.headers["allow"] == "GET"
