"""Guideline pages: admins save and publish versions, researchers read, labelers neither."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Base, GuidelineVersion, Project, User
from app.schemas.guidelines import GuidelineSave
from app.schemas.projects import ProjectCreate
from app.services import guidelines, projects
from tests.conftest import web_login

V1 = "# Rules\n\nBe *kind*.\nBe brief.\n"
V2 = "# Rules\n\nBe *kind*.\nBe accurate.\n"
XSS = "Hello <script>alert(1)</script> & <img src=x onerror=alert(2)>"

# --- helpers --------------------------------------------------------------------------------


def snapshot(db: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as the database holds it."""
    db.expire_all()
    return {
        table.name: [
            tuple(row) for row in db.execute(table.select().order_by(*table.primary_key.columns))
        ]
        for table in Base.metadata.sorted_tables
    }


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def notice(page: str) -> str | None:
    found = _texts(r'data-testid="notice">(.*?)</p>', page)
    return found[0] if found else None


def error_message(page: str) -> str:
    found = _texts(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return found[0]


def field_errors(page: str) -> dict[str, str]:
    found = re.findall(
        r'name="(\w+)"[^>]*>(?:[^<]*</textarea>)?\s*<p class="field-error"[^>]*>(.*?)</p>', page
    )
    return {name: html.unescape(message) for name, message in found}


def textarea(page: str, name: str) -> str:
    found = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, f"no textarea {name!r}"
    return html.unescape(found.group(1))


def statuses(page: str) -> dict[int, str]:
    """{version: status tag} from the versions table."""
    rows = re.findall(
        r'data-testid="guideline-version-(\d+)">.*?<span class="tag[^"]*">(\w+)</span>', page, re.S
    )
    return {int(version): status for version, status in rows}


def publish_buttons(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-testid="publish-(\d+)"', page)]


def versions_of(db: Session, project: Project) -> list[tuple[int, str, str, bool]]:
    db.expire_all()
    found = db.scalars(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project.id)
        .order_by(GuidelineVersion.version)
    )
    return [(v.version, v.body, v.note, v.published_at is not None) for v in found]


def add(db: Session, project: Project, admin: User, body: str, note: str = "") -> None:
    guidelines.save_version(db, project.id, GuidelineSave(body=body, note=note), acting=admin)


@pytest.fixture
def project(db: Session, admin: User) -> Project:
    return projects.create_project(db, ProjectCreate(name="Chat"), acting=admin)


@pytest.fixture
def admin_csrf(client: TestClient, admin: User) -> str:
    return web_login(client, admin.username)


def page_url(project: Project | int, rest: str = "") -> str:
    project_id = project if isinstance(project, int) else project.id
    return f"/projects/{project_id}/guidelines{rest}"


# --- the versions page ----------------------------------------------------------------------


def test_empty_guideline_page_offers_version_1(
    client: TestClient, project: Project, admin_csrf: str
) -> None:
    response = client.get(page_url(project))

    assert response.status_code == 200
    assert "<h1>Guideline of Chat</h1>" in response.text
    assert 'data-testid="no-versions">No versions yet.</p>' in response.text
    assert "No version is published yet, so labelers see no guideline." in response.text
    assert textarea(response.text, "body") == ""
    assert '<button type="submit">Save as version 1</button>' in response.text
    assert 'data-testid="diff-picker"' not in response.text


def test_saving_adds_a_draft_and_prefills_the_next_edit(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    response = client.post(
        page_url(project),
        data={"body": V1.replace("\n", "\r\n"), "note": " start ", "csrf_token": admin_csrf},
    )

    assert response.status_code == 303
    assert response.headers["location"] == page_url(project)
    assert versions_of(db, project) == [(1, V1, "start", False)]
    page = client.get(page_url(project))
    assert notice(page.text) == "Saved version 1 as a draft."
    assert statuses(page.text) == {1: "draft"}
    assert publish_buttons(page.text) == [1]
    assert textarea(page.text, "body") == V1
    assert '<button type="submit">Save as version 2</button>' in page.text
    assert "<td>start</td>" in page.text
    assert "<td>root-admin</td>" in page.text


def test_publishing_from_the_page(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)

    response = client.post(page_url(project, "/1/publish"), data={"csrf_token": admin_csrf})

    assert response.status_code == 303
    assert response.headers["location"] == page_url(project)
    assert [row[3] for row in versions_of(db, project)] == [True, False]
    page = client.get(page_url(project))
    assert notice(page.text) == "Published version 1: it is now the current guideline."
    assert statuses(page.text) == {2: "draft", 1: "current"}
    assert publish_buttons(page.text) == [2]
    assert f'Labelers work under <a href="{page_url(project, "/1")}">version 1</a>' in page.text

    client.post(page_url(project, "/2/publish"), data={"csrf_token": admin_csrf})
    page = client.get(page_url(project))
    assert statuses(page.text) == {2: "current", 1: "published"}
    assert publish_buttons(page.text) == []


def test_a_draft_older_than_the_current_offers_no_publish_button(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    guidelines.publish_version(db, project.id, 2)

    page = client.get(page_url(project))

    assert statuses(page.text) == {2: "current", 1: "draft"}
    assert publish_buttons(page.text) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [("", "a guideline needs a body"), ("  \r\n ", "a guideline needs a body")],
    ids=["empty", "blank"],
)
def test_empty_body_is_422_and_changes_nothing(
    client: TestClient, db: Session, project: Project, admin_csrf: str, body: str, message: str
) -> None:
    before = snapshot(db)

    response = client.post(
        page_url(project), data={"body": body, "note": "oops", "csrf_token": admin_csrf}
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {"body": message}
    assert 'id="note" name="note" type="text" value="oops"' in response.text
    assert snapshot(db) == before


def test_unchanged_body_is_422_and_changes_nothing(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    before = snapshot(db)

    response = client.post(page_url(project), data={"body": V1, "csrf_token": admin_csrf})

    assert response.status_code == 422
    assert field_errors(response.text) == {"body": "nothing changed since version 1"}
    assert textarea(response.text, "body") == V1
    assert snapshot(db) == before


def test_too_long_body_is_422_and_changes_nothing(
    client: TestClient, db: Session, project: Project, admin_csrf: str
) -> None:
    before = snapshot(db)

    response = client.post(
        page_url(project), data={"body": "x" * 200_001, "csrf_token": admin_csrf}
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {"body": "String should have at most 200000 characters"}
    assert snapshot(db) == before


def test_publishing_twice_is_409_and_changes_nothing(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    guidelines.publish_version(db, project.id, 1)
    before = snapshot(db)

    response = client.post(page_url(project, "/1/publish"), data={"csrf_token": admin_csrf})

    assert response.status_code == 409
    assert error_message(response.text) == "version 1 is already published"
    assert snapshot(db) == before


def test_publishing_an_older_draft_is_409_and_changes_nothing(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    guidelines.publish_version(db, project.id, 2)
    before = snapshot(db)

    response = client.post(page_url(project, "/1/publish"), data={"csrf_token": admin_csrf})

    assert response.status_code == 409
    assert error_message(response.text) == (
        "version 2 is published and newer than version 1; save a new version instead"
    )
    assert snapshot(db) == before


def test_saving_without_the_csrf_token_is_403(
    client: TestClient, db: Session, project: Project, admin_csrf: str
) -> None:
    before = snapshot(db)

    response = client.post(page_url(project), data={"body": V1})

    assert response.status_code == 403
    assert snapshot(db) == before


# --- one version ----------------------------------------------------------------------------


def test_version_page_renders_the_markdown(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1, note="start")
    add(db, project, admin, V2)
    guidelines.publish_version(db, project.id, 1)

    first = client.get(page_url(project, "/1"))
    second = client.get(page_url(project, "/2"))

    assert first.status_code == second.status_code == 200
    assert re.search(
        r'data-testid="guideline-title">Version 1\s*<span class="tag ok">current', first.text
    )
    assert "<h1>Rules</h1>\n<p>Be <em>kind</em>.\nBe brief.</p>" in first.text
    assert 'data-testid="guideline-note">start</p>' in first.text
    assert publish_buttons(first.text) == []
    assert "Changes from version" not in first.text
    assert re.search(
        r'data-testid="guideline-title">Version 2\s*<span class="tag off">draft', second.text
    )
    assert publish_buttons(second.text) == [2]
    assert f'href="{page_url(project, "/diff?from=1&amp;to=2")}"' in second.text


def test_raw_html_in_a_guideline_is_shown_escaped(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, f"{XSS}\n\n<script>alert(3)</script>\n\n[click](javascript:alert(4))\n")

    for path in ("/2", "", "/diff?from=1&to=2"):
        response = client.get(page_url(project, path))
        assert response.status_code == 200, path
        assert "<script>alert" not in response.text, path
        assert "<img src=x" not in response.text, path
        assert 'href="javascript:' not in response.text, path
    version = client.get(page_url(project, "/2")).text
    assert (
        "<p>Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; "
        "&lt;img src=x onerror=alert(2)&gt;</p>" in version
    )
    assert "<p>&lt;script&gt;alert(3)&lt;/script&gt;</p>" in version
    assert "<p>[click](javascript:alert(4))</p>" in version
    diff = client.get(page_url(project, "/diff?from=1&to=2")).text
    assert "<ins>Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; " in diff


# --- diffs ----------------------------------------------------------------------------------


def test_diff_page_marks_additions_and_removals(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)

    response = client.get(page_url(project, "/diff?from=1&to=2"))

    assert response.status_code == 200
    assert "Changes from version 1 to version 2</h1>" in response.text
    assert _texts(r'data-testid="diff-removed">.*?<del>(.*?)</del>', response.text) == ["Be brief."]
    assert _texts(r'data-testid="diff-added">.*?<ins>(.*?)</ins>', response.text) == [
        "Be accurate."
    ]
    assert response.text.count('data-testid="diff-same"') == 3
    assert "+1 added" in response.text
    assert "\N{MINUS SIGN}1 removed" in response.text


def test_diff_of_a_version_with_itself_says_so(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    add(db, project, admin, V1)

    response = client.get(page_url(project, "/diff?from=1&to=1"))

    assert response.status_code == 200
    assert 'data-testid="diff-none"' in response.text


def test_versions_page_offers_a_diff_picker(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    for number in range(1, 4):
        add(db, project, admin, f"text {number}")

    page = client.get(page_url(project)).text

    picker = page[page.index('data-testid="diff-picker"') :]
    assert re.search(r'name="from">.*?<option value="2" selected>', picker, re.S)
    assert re.search(r'name="to"><option value="3" selected>', picker)


# --- not found and bad requests -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", ""),
        ("GET", "/1"),
        ("GET", "/diff?from=1&to=2"),
        ("POST", ""),
        ("POST", "/1/publish"),
    ],
)
def test_unknown_project_is_404(
    client: TestClient, db: Session, admin_csrf: str, method: str, rest: str
) -> None:
    before = snapshot(db)
    if method == "GET":
        response = client.get(page_url(999_999, rest))
    else:
        response = client.post(page_url(999_999, rest), data={"body": V1, "csrf_token": admin_csrf})

    assert response.status_code == 404
    assert error_message(response.text) == "no project with id 999999"
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", "/2"),
        ("POST", "/2/publish"),
        ("GET", "/diff?from=1&to=2"),
        ("GET", "/diff?from=2&to=1"),
    ],
)
def test_unknown_version_is_404(
    client: TestClient,
    db: Session,
    admin: User,
    project: Project,
    admin_csrf: str,
    method: str,
    rest: str,
) -> None:
    add(db, project, admin, V1)
    before = snapshot(db)
    if method == "GET":
        response = client.get(page_url(project, rest))
    else:
        response = client.post(page_url(project, rest), data={"csrf_token": admin_csrf})

    assert response.status_code == 404
    assert error_message(response.text) == f"project {project.id} has no guideline version 2"
    assert snapshot(db) == before


@pytest.mark.parametrize("query", ["", "?from=1", "?from=a&to=1", "?from=0&to=1"])
def test_diff_with_a_bad_query_is_400(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str, query: str
) -> None:
    add(db, project, admin, V1)

    response = client.get(page_url(project, f"/diff{query}"))

    assert response.status_code == 400
    assert error_message(response.text).startswith("bad request: query.")


# --- who may do what ------------------------------------------------------------------------


def test_researcher_reads_without_edit_or_publish(
    client: TestClient, db: Session, admin: User, researcher: User, project: Project
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    csrf = web_login(client, researcher.username)
    before = snapshot(db)

    listing = client.get(page_url(project))
    version = client.get(page_url(project, "/2"))
    diff = client.get(page_url(project, "/diff?from=1&to=2"))

    assert (listing.status_code, version.status_code, diff.status_code) == (200, 200, 200)
    assert statuses(listing.text) == {2: "draft", 1: "draft"}
    assert 'data-testid="guideline-form"' not in listing.text
    assert publish_buttons(listing.text) == publish_buttons(version.text) == []
    assert 'data-testid="diff-picker"' in listing.text
    for path in ("", "/2/publish"):
        refused = client.post(page_url(project, path), data={"body": "mine", "csrf_token": csrf})
        assert refused.status_code == 403, path
        assert error_message(refused.text) == "this needs the admin role"
    assert snapshot(db) == before


def test_labeler_gets_403_on_every_guideline_page(
    client: TestClient, db: Session, admin: User, labeler: User, project: Project
) -> None:
    add(db, project, admin, V1)
    add(db, project, admin, V2)
    csrf = web_login(client, labeler.username)
    before = snapshot(db)
    staff_only = "this needs the admin or researcher role"
    admin_only = "this needs the admin role"

    for method, rest, message in [
        ("GET", "", staff_only),
        ("GET", "/1", staff_only),
        ("GET", "/diff?from=1&to=2", staff_only),
        ("POST", "", admin_only),
        ("POST", "/1/publish", admin_only),
    ]:
        if method == "GET":
            response = client.get(page_url(project, rest))
        else:
            response = client.post(page_url(project, rest), data={"body": "x", "csrf_token": csrf})
        assert response.status_code == 403, (method, rest)
        assert error_message(response.text) == message
    assert snapshot(db) == before


# --- the project page links here ------------------------------------------------------------


def test_project_page_links_to_its_guideline(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    page = client.get(f"/projects/{project.id}").text
    assert f'<a href="{page_url(project)}" data-testid="guideline-link">' in page
    assert "No guideline is published yet." in page

    add(db, project, admin, V1)
    guidelines.publish_version(db, project.id, 1)
    page = client.get(f"/projects/{project.id}").text
    assert f'Labelers work under <a href="{page_url(project, "/1")}">version 1</a>.' in page
