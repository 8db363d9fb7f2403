"""Every response carries the security headers; templates contain nothing the CSP would block."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Project, User
from app.schemas.guidelines import GuidelineSave
from app.schemas.projects import ProjectCreate
from app.services import guidelines, projects
from app.web.rendering import TEMPLATES_DIR
from app.web.security_headers import CONTENT_SECURITY_POLICY
from tests.conftest import web_login

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
HOSTILE = (
    "<script>window.__pwned=1</script>\n\n"
    '<img src=x onerror="window.__pwned=1">\n\n'
    "[click](javascript:window.__pwned=1)\n\n"
    '<div hx-get="/logout" hx-trigger="load">x</div>\n'
)
HOSTILE_HTML = (
    "<p>&lt;script&gt;window.__pwned=1&lt;/script&gt;</p>\n"
    '<p>&lt;img src=x onerror="window.__pwned=1"&gt;</p>\n'
    "<p>[click](javascript:window.__pwned=1)</p>\n"
    '<p>&lt;div hx-get="/logout" hx-trigger="load"&gt;x&lt;/div&gt;</p>\n'
)


def security_headers(response: object) -> dict[str, str]:
    found = response.headers  # type: ignore[attr-defined]
    return {name: found.get(name) for name in HEADERS}


@pytest.fixture
def project(db: Session, admin: User) -> Project:
    found = projects.create_project(
        db, ProjectCreate(name="Chat", description=f"Rate *answers*.\n\n{HOSTILE}"), acting=admin
    )
    guidelines.save_version(db, found.id, GuidelineSave(body=HOSTILE, note=""), acting=admin)
    return found


def test_the_policy_is_the_documented_one() -> None:
    assert CONTENT_SECURITY_POLICY == POLICY


@pytest.mark.parametrize(
    ("method", "path", "status", "content_type"),
    [
        ("GET", "/login", 200, "text/html; charset=utf-8"),
        ("GET", "/", 303, None),
        ("GET", "/no-such-page", 404, "text/html; charset=utf-8"),
        ("POST", "/login", 403, "text/html; charset=utf-8"),
        ("GET", "/static/smiley.css", 200, "text/css; charset=utf-8"),
        ("GET", "/static/js/back.js", 200, "text/javascript; charset=utf-8"),
        ("GET", "/static/no-such-file.css", 404, "application/json"),
        ("GET", "/api/v1/openapi.json", 401, "application/json"),
        ("GET", "/api/v1/docs", 303, None),
        ("GET", "/api/v1/no-such-route", 404, "application/json"),
        ("GET", "/api/v1/me", 401, "application/json"),
    ],
)
def test_anonymous_responses_carry_the_headers(
    client: TestClient, method: str, path: str, status: int, content_type: str | None
) -> None:
    response = client.request(method, path)

    assert response.status_code == status
    assert response.headers.get("content-type") == content_type
    assert security_headers(response) == HEADERS


def test_signed_in_pages_carry_the_headers(
    client: TestClient, admin: User, project: Project
) -> None:
    web_login(client, admin.username)

    for path in (
        "/",
        "/projects",
        f"/projects/{project.id}",
        f"/projects/{project.id}/guidelines",
        f"/projects/{project.id}/guidelines/1",
        f"/projects/{project.id}/guidelines/99",
        f"/projects/{project.id}/queues",
        "/account/tokens",
        "/admin/users",
    ):
        response = client.get(path)
        assert response.status_code == (404 if path.endswith("/99") else 200), path
        assert security_headers(response) == HEADERS, path


def test_a_guideline_renders_inert_inside_hx_disable(
    client: TestClient, admin: User, project: Project
) -> None:
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}/guidelines/1").text

    assert (
        '<div class="markdown untrusted" hx-disable data-testid="guideline-body">\n'
        f"{HOSTILE_HTML}\n</div>"
    ) in page
    assert "<script>window" not in page
    assert 'href="javascript:' not in page


def test_the_project_description_is_markdown_inside_hx_disable(
    client: TestClient, admin: User, project: Project
) -> None:
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}").text

    assert (
        '<div class="markdown untrusted" hx-disable data-testid="project-description">\n'
        f"<p>Rate <em>answers</em>.</p>\n{HOSTILE_HTML}\n</div>"
    ) in page


def test_an_empty_description_says_so(client: TestClient, db: Session, admin: User) -> None:
    found = projects.create_project(db, ProjectCreate(name="Bare"), acting=admin)
    web_login(client, admin.username)

    page = client.get(f"/projects/{found.id}").text

    assert '<p class="muted" data-testid="project-description">No description.</p>' in page


def test_htmx_is_configured_for_the_policy_and_csrf_header_is_json(
    client: TestClient, admin: User
) -> None:
    csrf = web_login(client, admin.username)

    page = client.get("/account/tokens").text

    config = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)
    assert config is not None
    assert json.loads(config.group(1)) == {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
        # Not "style": copying a style attribute with setAttribute breaks the policy.
        "attributesToSettle": ["class", "width", "height"],
    }
    headers = re.search(r"<body hx-headers='([^']*)'>", page)
    assert headers is not None
    assert json.loads(html.unescape(headers.group(1))) == {"X-CSRF-Token": csrf}


def test_the_stylesheet_carries_htmx_indicator_rules(client: TestClient) -> None:
    css = client.get("/static/smiley.css").text

    assert ".htmx-indicator { opacity: 0; visibility: hidden; }" in css
    assert ".htmx-request .htmx-indicator, .htmx-request.htmx-indicator { opacity: 1;" in css


def test_the_error_page_goes_back_without_a_javascript_url(client: TestClient) -> None:
    page = client.get("/no-such-page").text

    assert '<a href="/" data-history-back data-testid="go-back">Go back</a>' in page
    assert '<script src="/static/js/back.js" defer></script>' in page
    assert "javascript:" not in page


def test_the_api_docs_carry_the_same_headers_and_load_only_our_own_scripts(
    client: TestClient, labeler: User
) -> None:
    web_login(client, labeler.username)

    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert security_headers(response) == HEADERS
    assert re.findall(r"<script\b[^>]*>.*?</script>", response.text, re.S) == [
        '<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>',
        '<script src="/static/js/api-docs.js"></script>',
    ]
    assert re.findall(r'(?:href|src)="([^"]*)"', response.text) == [
        "/static/vendor/swagger-ui/swagger-ui.css",
        "/static/vendor/swagger-ui/favicon-32x32.png",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/js/api-docs.js",
    ]


# --- the templates themselves ---------------------------------------------------------------

TEMPLATES = sorted(Path(TEMPLATES_DIR).rglob("*.html"))
JSON_SCRIPT = re.compile(
    r'<script type="application/json" id="[\w-]+">\{\{ [^{}]*\|\s*tojson \}\}</script>'
)


def template_id(path: Path) -> str:
    return str(path.relative_to(TEMPLATES_DIR))


def template_source(path: Path) -> str:
    """The template without its {# comments #}, which may name what they forbid."""
    return re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)


def test_there_are_templates_to_scan() -> None:
    names = {template_id(path) for path in TEMPLATES}
    assert {"base.html", "error.html", "partials/untrusted.html"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=template_id)
def test_a_template_has_nothing_the_policy_blocks(path: Path) -> None:
    source = template_source(path)

    assert not re.search(r"\sstyle\s*=", source), "style attribute: use a class in smiley.css"
    assert "<style" not in source, "<style> block: move the rules into smiley.css"
    assert not re.search(r"\son[a-z]+\s*=", source, re.I), "inline event handler"
    assert not re.search(r"\s(data-)?hx-on", source), "hx-on runs code htmx would have to eval"
    assert "javascript:" not in source, "javascript: URL"
    for tag in re.finditer(r"<script\b([^>]*)>(.*?)</script>", source, re.S):
        if JSON_SCRIPT.fullmatch(tag.group(0)):
            continue
        assert tag.group(2) == "", f"inline script: {tag.group(0)[:80]}"
        assert re.search(r'\ssrc="/static/[\w./-]+\.js"', tag.group(1)), tag.group(0)


@pytest.mark.parametrize("path", TEMPLATES, ids=template_id)
def test_only_markdown_output_is_marked_safe(path: Path) -> None:
    source = template_source(path)

    for found in re.finditer(r"\|\s*safe\b", source):
        before = source[: found.start()]
        assert re.search(r"\|\s*markdown(\([^()]*\))?\s*$", before), (
            f"|safe on something other than |markdown at offset {found.start()}"
        )
    assert "Markup(" not in source


@pytest.mark.parametrize(
    ("path", "expected_type", "expected_start"),
    [
        ("/api/v1/boom", "application/json", '{"error":{"code":"internal_error"'),
        ("/boom", "text/plain; charset=utf-8", "Something went wrong on our side."),
    ],
)
def test_an_unhandled_error_is_a_500_with_the_headers_too(
    private_app: FastAPI, path: str, expected_type: str, expected_start: str
) -> None:
    """Starlette answers those outside every middleware; the handler must set the headers."""

    def boom() -> None:
        raise RuntimeError("a bug")

    private_app.add_api_route(path, boom)
    response = TestClient(private_app, raise_server_exceptions=False).get(path)

    assert response.status_code == 500
    assert response.headers["content-type"] == expected_type
    assert response.text.startswith(expected_start)
    assert "a bug" not in response.text
    assert security_headers(response) == HEADERS
