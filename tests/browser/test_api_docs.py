"""The API docs in a real browser: Swagger UI from our own origin, under the site's policy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Route, expect

from app.models import Role
from app.schemas.users import UserCreate
from app.services import users
from tests.browser.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "reader password 1"
# Runs before any page script (the browser injects it, so the CSP does not apply to it).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@dataclass
class Traffic:
    """Every request the page made, and those that left the origin (refused, as offline)."""

    base: str
    paths: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def traffic(live_server: LiveServer, page: Page) -> Iterator[Traffic]:
    found = Traffic(base=live_server.url)
    page.add_init_script(RECORD_VIOLATIONS)

    def on_request(request: Request) -> None:
        if request.url.startswith(found.base + "/"):
            found.paths.append(request.url.removeprefix(found.base))

    def leave_origin(route: Route) -> None:
        if route.request.url.startswith(found.base + "/"):
            route.continue_()
        else:
            found.foreign.append(route.request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            found.console_errors.append(message.text)

    page.on("request", on_request)
    page.route("**/*", leave_origin)
    page.on("console", on_console)
    yield found


@pytest.fixture
def reader(live_server: LiveServer) -> str:
    """A labeler: the least a signed-in user can be."""
    with live_server.db() as db:
        users.create_user(db, UserCreate(username="rita", role=Role.labeler, password=PASSWORD))
    return "rita"


def test_a_signed_in_user_reads_the_docs_from_this_origin_under_the_policy(
    live_server: LiveServer, page: Page, traffic: Traffic, reader: str
) -> None:
    base = live_server.url

    # Anonymous: the login page, which comes back to the docs.
    page.goto(f"{base}/api/v1/docs")
    assert page.url == f"{base}/login?next=%2Fapi%2Fv1%2Fdocs"
    page.get_by_label("Username").fill(reader)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"{base}/api/v1/docs")

    operations = page.locator("#swagger-ui .opblock")
    # A 1.8 MB bundle to parse on a busy CI core: more than the default five seconds.
    expect(operations.first).to_be_visible(timeout=30_000)
    schema = page.request.get(f"{base}/api/v1/openapi.json").json()
    documented = sum(len(methods) for methods in schema["paths"].values())
    expect(operations).to_have_count(documented)
    me = page.locator('.opblock-get:has([data-path="/api/v1/me"])')
    expect(me).to_have_count(1)
    # Opening an operation draws its parameters and example answers (syntax-highlighted).
    me.locator(".opblock-summary").click()
    expect(me.locator(".responses-wrapper")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert traffic.foreign == []
    # What the docs page loaded, after the login form sent the browser back to it.
    since_login = traffic.paths[traffic.paths.index("/login") :]
    docs_page = since_login[since_login.index("/api/v1/docs") :]
    assert sorted(set(docs_page)) == [
        "/api/v1/docs",
        "/api/v1/openapi.json",
        "/static/js/api-docs.js",
        "/static/vendor/swagger-ui/favicon-32x32.png",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
    ], traffic.paths
    assert page.evaluate("window.__violations") == []
    assert traffic.console_errors == []
