"""Hostile input drawn from the API's own OpenAPI schema (schemathesis + hypothesis).

For every operation under /api/v1, valid and deliberately invalid requests are sent as an admin
with a Bearer token, against a fresh, seeded database on SQLite and on PostgreSQL (the stricter:
integer overflow, NUL bytes, JSONB). Each answer must not be a 5xx and must match the schema:
a documented status code, the documented content type and a body of the documented shape.
Half of the valid requests name rows that exist (`fuzz_support.seed`), so the code past the 404
is reached. A second pass as a labeler checks that admin and staff routes refuse with 401, 403
or 404, never a 5xx. Examples are derandomized, so CI replays the same requests every run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app.db import make_engine
from app.main import create_app
from app.settings import Settings
from tests.api.test_api_roles import ADMIN_ONLY, STAFF
from tests.conftest import MigratedDatabases, bearer
from tests.hostile.fuzz_support import EXCLUDED, SCHEMA_PATH, Seeded, seed

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


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented /api/v1 operation; the schema needs no database."""
    app = create_app(
        Settings(data_dir=Path("/nonexistent"), secret_key=SECRET_KEY),
        create_engine("sqlite://"),
    )
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
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
        yield FuzzTarget(schema, seeded)
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
