"""Hostile input drawn from the API's own OpenAPI schema (schemathesis + hypothesis).

For every operation under /api/v1, valid and deliberately invalid requests are sent as an admin
with a Bearer token, against a fresh, seeded database on SQLite and on PostgreSQL (the stricter:
integer overflow, NUL bytes, JSONB). Each answer must not be a 5xx and must match the schema:
a documented status code, the documented content type and a body of the documented shape.
Half of the valid requests name rows that exist (`fuzz_support.seed`), so the code past the 404
is reached. A second pass as a labeler checks that admin and staff routes refuse with 401, 403
or 404, never a 5xx. Examples are derandomized, so CI replays the same requests every run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.main import create_app
from app.models import Role, User
from app.settings import Settings
from tests.api.test_api_roles import ADMIN_ONLY, STAFF
from tests.conftest import MigratedDatabases, bearer, make_token, make_user
from tests.hostile.fuzz_support import (
    EXCLUDED,
    SCHEMA_PATH,
    UNSTORABLE,
    UNSTORABLE_IN_URL,
    Place,
    Seeded,
    placed,
    seed,
    string_parameters,
    text_places,
)

pytestmark = pytest.mark.slow

# Examples per operation and pass: enough to hit each route's validation, 404s and bad text
# on both backends while the file stays well under three minutes on a two-core machine.
ADMIN_EXAMPLES = 8
LABELER_EXAMPLES = 3
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SECRET_KEY = "fuzz-secret-key-" + "x" * 32
PATH_PARAMETER = re.compile(r"{(\w+)}")
REFUSED = {401, 403, 404}


# The schema needs no database.
OPENAPI = create_app(
    Settings(data_dir=Path("/nonexistent"), secret_key=SECRET_KEY), create_engine("sqlite://")
).openapi()


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented /api/v1 operation."""
    return sorted(
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if (method.upper(), path) not in EXCLUDED
    )


OPERATIONS = _operations()
STAFF_ONLY = set(ADMIN_ONLY) | set(STAFF)


@dataclass(frozen=True)
class FuzzTarget:
    schema: schemathesis.BaseSchema
    seeded: Seeded
    app: FastAPI


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_databases: MigratedDatabases,
) -> Iterator[FuzzTarget]:
    """The app on a database of its own, migrated and seeded; dropped at the end."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        url = migrated_databases.sqlite(folder / "fuzz.sqlite3")
    else:
        url = migrated_databases.postgres("smiley_fuzz")
    engine = None
    try:
        app_settings = Settings(
            data_dir=folder / "data",
            database_url=url,
            secret_key=SECRET_KEY,
            # The embedded broker in this folder: launching a run or a dataset job only writes
            # a message file, so those routes are fuzzed too without Redis or a worker.
            broker_url="filesystem://",
            import_dir=folder / "imports",
        )
        app_settings.ensure_data_dir()
        (folder / "imports").mkdir()
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as db:
            seeded = seed(db, app_settings)
        app = create_app(app_settings, engine)
        # The schema is for signed-in users only (app/api/openapi.py).
        schema = schemathesis.openapi.from_asgi(
            SCHEMA_PATH, app, headers=bearer(seeded.admin_token)
        )
        yield FuzzTarget(schema, seeded, app)
    finally:
        if engine is not None:
            engine.dispose()
        if request.param == "postgresql":
            migrated_databases.drop_postgres(url)


def _fuzz(
    target: FuzzTarget, method: str, path: str, token: str, examples: int, *, invalid: bool
) -> list[int]:
    """Sends `examples` drawn requests (valid ones with and without real ids, and invalid ones
    when `invalid`), validating each answer against the schema; returns the statuses seen."""
    operation = target.schema[path][method]
    names = PATH_PARAMETER.findall(path)
    real = {name: target.seeded.ids[name] for name in names if name in target.seeded.ids}
    strategies = [operation.as_strategy()]
    if invalid:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    if real:
        strategies.append(operation.as_strategy(path_parameters=real))
    statuses: list[int] = []

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def send(case: schemathesis.Case) -> None:
        response = case.call(headers=bearer(token))
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    send()
    return statuses


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_admin_gets_documented_answers(target: FuzzTarget, method: str, path: str) -> None:
    statuses = _fuzz(target, method, path, target.seeded.admin_token, ADMIN_EXAMPLES, invalid=True)
    assert statuses and max(statuses) < 500


STAFF_OPERATIONS = [operation for operation in OPERATIONS if operation in STAFF_ONLY]


@pytest.mark.parametrize(
    ("method", "path"), STAFF_OPERATIONS, ids=[f"{m} {p}" for m, p in STAFF_OPERATIONS]
)
def test_labeler_is_refused_staff_routes(target: FuzzTarget, method: str, path: str) -> None:
    # Valid requests only: a body that is not even JSON is refused (400/422) before anyone
    # asks who sent it, which tells a labeler nothing; the role check is what is tested here.
    statuses = _fuzz(
        target, method, path, target.seeded.labeler_token, LABELER_EXAMPLES, invalid=False
    )
    assert set(statuses) <= REFUSED, sorted(set(statuses))


# --- unstorable text in every string ----------------------------------------------------------


@dataclass(frozen=True)
class TextSlots:
    """Where an operation takes a string: places in its JSON body, query and path names."""

    body: list[Place]
    query: list[str]
    path: list[str]


def _text_slots(method: str, path: str) -> TextSlots:
    operation = OPENAPI["paths"][path][method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    components = OPENAPI["components"]["schemas"]
    body = text_places(schema, components) if schema else []
    query = string_parameters(operation, "query", components)
    return TextSlots(body, query, string_parameters(operation, "path", components))


TEXT_OPERATIONS = {
    operation: slots
    for operation in OPERATIONS
    if (slots := _text_slots(*operation)).body or slots.query or slots.path
}


def _fresh_admin_token(target: FuzzTarget) -> str:
    """A token of an admin of this test's own: the admin passes above may have revoked their
    token or deactivated their user, which a 401 here would hide."""
    with Session(target.app.state.engine, expire_on_commit=False) as db:
        admin = db.scalar(select(User).where(User.username == "fuzz-text-admin"))
        if admin is None:
            admin = make_user(db, "fuzz-text-admin", Role.admin)
        admin.is_active, admin.role, admin.must_change_password = True, Role.admin, False
        db.commit()
        return make_token(db, admin, "text")


def _base_case(target: FuzzTarget, method: str, path: str) -> schemathesis.Case:
    """One valid request drawn from the schema, naming seeded rows, to put bad text into."""
    names = PATH_PARAMETER.findall(path)
    real = {name: target.seeded.ids[name] for name in names if name in target.seeded.ids}
    drawn: list[schemathesis.Case] = []

    @settings(
        max_examples=1,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=target.schema[path][method].as_strategy(path_parameters=real))
    def draw(case: schemathesis.Case) -> None:
        drawn.append(case)

    draw()
    return drawn[-1]


@pytest.mark.parametrize(
    ("method", "path"), sorted(TEXT_OPERATIONS), ids=[f"{m} {p}" for m, p in TEXT_OPERATIONS]
)
def test_unstorable_text_in_any_string_is_never_a_5xx(
    target: FuzzTarget, method: str, path: str
) -> None:
    """Each string of the body, query and path in turn gets a NUL byte, then a lone surrogate,
    in an otherwise valid request: a 4xx every time, and the NUL named (422) at least once.
    Drawn requests rarely hold either, so this sends them on purpose."""
    slots = TEXT_OPERATIONS[(method, path)]
    case = _base_case(target, method, path)
    body = case.body if isinstance(case.body, dict | list) else None
    query = {k: v for k, v in (case.query or {}).items() if v is not None}
    path_values = {k: quote(str(v), safe="") for k, v in (case.path_parameters or {}).items()}
    headers = {**bearer(_fresh_admin_token(target)), "content-type": "application/json"}
    sent: list[tuple[str, str, Any, int]] = []

    def send(url_path: dict[str, str], url_query: str, json_body: Any) -> None:
        url = path.format(**url_path) + (f"?{url_query}" if url_query else "")
        # ASCII escapes: a lone surrogate travels as "\ud800", as JSON encoders send it.
        content = None if json_body is None else json.dumps(json_body)
        response = client.request(method, url, content=content, headers=headers)
        sent.append((url, repr(json_body)[:200], response.status_code, response.text[:300]))

    with TestClient(target.app, raise_server_exceptions=False) as client:
        plain_query = urlencode(query, doseq=True)
        for value in UNSTORABLE:
            for place in slots.body:
                send(path_values, plain_query, placed(body, place, value))
        for value in UNSTORABLE_IN_URL:
            for name in slots.query:
                others = urlencode({k: v for k, v in query.items() if k != name}, doseq=True)
                send(path_values, "&".join(filter(None, [others, f"{name}={value}"])), body)
            for name in slots.path:
                send({**path_values, name: value}, plain_query, body)

    assert [each for each in sent if each[2] >= 500] == []
    assert 422 in {each[2] for each in sent}, sent
