"""Shared fixtures.

Every database test runs twice: on SQLite and on PostgreSQL (a database of its own, created and
dropped here). PostgreSQL tests are skipped, with the reason shown, only when no server answers
at SMILEY_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
Each test runs in a transaction that is rolled back, so tests never see each other's rows.

Under pytest-xdist each worker has its own databases (their names carry the worker id) and its
own Redis database numbers (`redis_db`). Alembic runs once per worker and backend: every other
database is a copy of that one (`MigratedDatabases`); tests/test_migrations.py still migrates
from empty."""

from __future__ import annotations

import os
import re
import secrets
import shutil
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
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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


def xdist_worker() -> str:
    """This test process's pytest-xdist id ("gw0", "gw1", ...), or "main" without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def redis_db(slot: int) -> int:
    """A Redis database number of this test process's own, for the tests in `slot` (0-2: the
    end-to-end, training, and health and resending tests). Redis has 16 (0-15); 0 is left to
    people, and numbers wrap past the fifth worker, whose tests the xdist groups below keep
    apart."""
    assert 0 <= slot < 3
    worker = xdist_worker()
    index = int(worker[2:]) if worker.startswith("gw") else 0
    return 1 + (index * 3 + slot) % 15


def create_postgres_database(prefix: str, template: str | None = None) -> tuple[str, Engine]:
    admin = postgres_admin_engine()
    name = f"{prefix}_{xdist_worker()}_{os.getpid()}_{secrets.token_hex(4)}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy_of}'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, admin


def drop_postgres_database(admin: Engine, url: str) -> None:
    name = make_url(url).database
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# pytest-xdist groups (`--dist loadgroup`): each group runs on one worker, in order. The slowest
# come first, so that they overlap the thousands of quick tests instead of ending the run alone.
SLOWEST_GROUPS_FIRST = ("loop", "rl", "training-e2e", "faults", "plain-install")


def pytest_configure(config: pytest.Config) -> None:
    # Thousands of tests make users: argon2's cheapest parameters here, the real ones in
    # tests/test_security.py and in every server process the tests start.
    security.use_cheap_hasher_for_tests()
    # One torch/OpenMP thread per test process, and per worker process a test starts: the
    # xdist workers already keep every core busy, and oversubscribed OpenMP threads spin, which
    # costs CPU and makes nothing faster (the tiny models gain nothing from a second thread).
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Moves the slowest groups' tests to the front, keeping every other order as it was
    (xdist hands out work in collection order when run with --no-loadscope-reorder)."""

    def rank(item: pytest.Item) -> int:
        marker = item.get_closest_marker("xdist_group")
        name = marker.args[0] if marker and marker.args else None
        return (
            SLOWEST_GROUPS_FIRST.index(name)
            if name in SLOWEST_GROUPS_FIRST
            else len(SLOWEST_GROUPS_FIRST)
        )

    items.sort(key=rank)


class MigratedDatabases:
    """Migrated databases at the cost of a file copy: Alembic runs once per test process and
    backend, on first use, and each database asked for is a copy of that one (a copied SQLite
    file; PostgreSQL's CREATE DATABASE ... TEMPLATE)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._sqlite: Path | None = None
        self._postgres_template: tuple[str, Engine] | None = None

    def sqlite(self, path: Path) -> str:
        """A migrated SQLite database at `path`; returns its URL."""
        if self._sqlite is None:
            template = self._folder / "template.sqlite3"
            migrate.upgrade(f"sqlite:///{template}")
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        return f"sqlite:///{path}"

    def postgres(self, prefix: str) -> str:
        """A migrated PostgreSQL database of its own; drop it with `drop_postgres`."""
        if self._postgres_template is None:
            url, admin = create_postgres_database("smiley_template")
            try:
                migrate.upgrade(url)
            except BaseException:
                drop_postgres_database(admin, url)
                raise
            self._postgres_template = (url, admin)
        template = make_url(self._postgres_template[0]).database
        url, admin = create_postgres_database(prefix, template=template)
        admin.dispose()
        return url

    def drop_postgres(self, url: str) -> None:
        drop_postgres_database(postgres_admin_engine(), url)

    def close(self) -> None:
        if self._postgres_template is not None:
            drop_postgres_database(self._postgres_template[1], self._postgres_template[0])


@pytest.fixture(scope="session")
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(tmp_path_factory.mktemp("migrated"))
    yield databases
    databases.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, migrated_databases: MigratedDatabases
) -> Iterator[str]:
    """A migrated database shared by the session's rolled-back tests."""
    if backend == "sqlite":
        yield migrated_databases.sqlite(tmp_path_factory.mktemp("db") / "smiley.sqlite3")
        return
    url = migrated_databases.postgres("smiley_test")
    try:
        yield url
    finally:
        migrated_databases.drop_postgres(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def own_database(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_databases: MigratedDatabases
) -> Iterator[str]:
    """A migrated database for this test alone, for code that opens its own sessions and
    commits (the runner, real worker and server processes), so nothing leaks into the
    rolled-back tests."""
    if request.param == "sqlite":
        yield migrated_databases.sqlite(tmp_path / "own.sqlite3")
        return
    url = migrated_databases.postgres("smiley_own")
    try:
        yield url
    finally:
        migrated_databases.drop_postgres(url)


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


@pytest.fixture(scope="session")
def shared_apps() -> dict[str, FastAPI]:
    return {}


@pytest.fixture
def app(
    settings: Settings, engine: Engine, db: Session, shared_apps: dict[str, FastAPI]
) -> FastAPI:
    """The app, with this test's settings, its requests on this test's rolled-back session.

    One app per database and test process, handed to each test with the test's settings, no
    dependency overrides but the session and fresh request counters: FastAPI builds an app's
    routes on its first request (0.2-0.5 s of CPU), which thousands of tests would each pay.
    Tests that need other middleware settings (the body limit) build their own app."""
    app = shared_apps.get(settings.resolved_database_url)
    if app is None or app.state.engine is not engine:
        app = shared_apps[settings.resolved_database_url] = create_app(settings, engine)
    app.state.settings = settings
    app.state.http_metrics.reset()
    return _on_session(app, db)


@pytest.fixture
def private_app(settings: Settings, engine: Engine, db: Session) -> FastAPI:
    """An app of this test's own, like `app`, for tests that add routes to it."""
    return _on_session(create_app(settings, engine), db)


def _on_session(app: FastAPI, db: Session) -> FastAPI:
    def _test_db() -> Iterator[Session]:
        yield db

    app.dependency_overrides.clear()
    app.dependency_overrides[get_db] = _test_db
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny policy the training tests start from (worker/training/tiny.py), built once per
    test process (about 4 s of CPU each time). Tests read it and write their outputs elsewhere;
    one that needs it inside its data folder copies it."""
    from worker.training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium per test process, for every test that drives one (tests/browser,
    tests/hostile); each test gets a fresh context (`page`), so no cookie or storage leaks."""
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Runs in every page of a `page` fixture's context before the page's own scripts (injected by
# the browser itself, so not subject to the CSP) and reports each violation to the test process
# through a binding, so the record survives navigations and htmx swaps alike.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const element = event.target instanceof Element ? event.target.outerHTML.slice(0, 200) : "";
  window.__smileyCspViolation(
    `${event.violatedDirective} ${event.blockedURI || "inline"} at ${event.sourceFile}:` +
    `${event.lineNumber} ${element}`.trimEnd());
});
"""


@pytest.fixture
def csp_violations() -> list[str]:
    """Every Content-Security-Policy violation of the test's `page`, across every page load and
    swap. The `page` fixture fails the test if any is left here at the end: a test that causes
    some on purpose asserts them and clears the list."""
    return []


@pytest.fixture
def page(browser: object, csp_violations: list[str]) -> Iterator[object]:
    context = browser.new_context()  # type: ignore[attr-defined]
    context.expose_binding(
        "__smileyCspViolation", lambda _source, text: csp_violations.append(text)
    )
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(10_000)
    # expect() keeps its own timeout (5 s); a CI machine running training tests beside the
    # browser ones has been seen to need longer for one htmx swap.
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    yield page
    if not page.is_closed():
        # A round trip: the binding's calls made before it have all arrived once it answers.
        page.evaluate("0")
    context.close()
    assert csp_violations == [], "the page broke its Content-Security-Policy"


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
