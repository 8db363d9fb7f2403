"""Shared fixtures.

Every database test runs twice: on SQLite and on PostgreSQL (a database of its own, created and
dropped here). PostgreSQL tests are skipped, with the reason shown, only when no server answers
at SMILEY_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
Each test runs in a transaction that is rolled back, so tests never see each other's rows."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import migrate, security
from app.db import make_engine
from app.deps import get_db
from app.main import create_app
from app.models import Role, User
from app.schemas.users import TokenCreate, UserCreate
from app.services import auth, users
from app.settings import Settings

PASSWORD = "correct horse battery"
POSTGRES_ADMIN_URL = os.environ.get(
    "SMILEY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SMILEY_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def unavailable(reason: str) -> None:
    """Skip with the reason shown; in CI (SMILEY_TEST_REQUIRE_SERVICES=1) fail instead."""
    if os.environ.get("SMILEY_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def postgres_admin_engine() -> Engine:
    """An AUTOCOMMIT engine on the maintenance database, or a skip saying why there is none."""
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        engine.dispose()
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {error}".splitlines()[0])
    return engine


def create_postgres_database(prefix: str) -> tuple[str, Engine]:
    admin = postgres_admin_engine()
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, admin


def drop_postgres_database(admin: Engine, url: str) -> None:
    name = make_url(url).database
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_configure(config: pytest.Config) -> None:
    # Thousands of tests make users: argon2's cheapest parameters here, the real ones in
    # tests/test_security.py and in every server process the tests start.
    security.use_cheap_hasher_for_tests()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the whole session (migrations are part of what is tested)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'smiley.sqlite3'}"
        migrate.upgrade(url)
        yield url
        return
    url, admin = create_postgres_database("smiley_test")
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(admin, url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction rolled back after the test; commits become savepoints."""
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-" + "x" * 32,
        task_events_record=False,
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, db: Session) -> FastAPI:
    app = create_app(settings, engine)

    def _test_db() -> Iterator[Session]:
        yield db

    app.dependency_overrides[get_db] = _test_db
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


# --- factories ------------------------------------------------------------------------------


def make_user(
    db: Session,
    username: str,
    role: Role = Role.labeler,
    *,
    password: str = PASSWORD,
    active: bool = True,
) -> User:
    user, _ = users.create_user(db, UserCreate(username=username, role=role, password=password))
    if not active:
        user.is_active = False
        db.commit()
    return user


def make_token(db: Session, user: User, name: str = "test") -> str:
    _, token = auth.create_api_token(db, user, TokenCreate(name=name))
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


def web_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Logs in through the form like a browser; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303, response.text
    return csrf_from(client.get("/account/tokens").text)


@pytest.fixture
def admin(db: Session) -> User:
    return make_user(db, "root-admin", Role.admin)


@pytest.fixture
def labeler(db: Session) -> User:
    return make_user(db, "lena", Role.labeler)


@pytest.fixture
def researcher(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)
