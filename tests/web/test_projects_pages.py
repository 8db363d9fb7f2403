"""Project pages: list, create, edit, archive; admins write, researchers read, labelers neither."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Project, User
from app.models.base import utcnow
from app.schemas.projects import Flag, ProjectCreate
from app.services import projects
from app.settings import Settings
from tests.conftest import web_login
from tests.services.agreement.world import build_world
from tests.training_factories import make_model, make_run, make_snapshot
from tests.web.helpers import snapshot

DEFAULT_FLAG_LINES = "\n".join(
    [
        "fails_instruction: Fails to follow the instruction",
        "hallucination: Hallucination / made-up facts",
        "inappropriate: Inappropriate for a customer assistant",
        "harmful_advice: Harmful or dangerous advice",
        "sexual: Sexual content",
        "violent: Violent content",
        "hateful: Hateful or discriminatory content",
        "private_information: Contains private information",
        "unnecessary_refusal: Unnecessary refusal",
        "other: Other (with text)",
    ]
)
FLAG_KEY_RULE = "a flag key is lower-case letters, digits and '_', starting with a letter"

# --- helpers --------------------------------------------------------------------------------


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def notice(page: str) -> str | None:
    found = _texts(r'data-testid="notice">(.*?)</p>', page)
    return found[0] if found else None


def field_errors(page: str) -> dict[str, str]:
    """{field: message} for every field error, keyed by the input just above it."""
    found = re.findall(
        r'name="(\w+)"[^>]*>(?:[^<]*</textarea>)?\s*<p class="field-error"[^>]*>(.*?)</p>', page
    )
    return {name: html.unescape(message) for name, message in found}


def error_message(page: str) -> str:
    found = _texts(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return found[0]


def form_value(page: str, name: str) -> str:
    """The value an input or textarea of the project form holds."""
    textarea = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    if textarea:
        return html.unescape(textarea.group(1))
    found = re.search(rf'<input id="{name}" name="{name}" type="text" value="([^"]*)"', page)
    assert found, f"no field {name!r}"
    return html.unescape(found.group(1))


def listed_names(page: str) -> list[str]:
    return _texts(r'<tr><td><a href="/projects/\d+">(.*?)</a></td>', page)


def make_project(db: Session, admin: User, name: str, *, archived: bool = False) -> Project:
    project = projects.create_project(
        db,
        ProjectCreate(
            name=name,
            description=f"About {name}",
            flags=[Flag(key="helpful", label="Helpful"), Flag(key="rude", label="Rude")],
        ),
        acting=admin,
    )
    if archived:
        project.is_archived = True
        db.commit()
    return project


def project_named(db: Session, name: str) -> Project:
    db.expire_all()
    project = db.scalar(select(Project).where(Project.name == name))
    assert project is not None, name
    return project


@pytest.fixture
def admin_csrf(client: TestClient, admin: User) -> str:
    return web_login(client, admin.username)


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["root-admin", "rhea"], ids=["admin", "researcher"])
def test_admin_and_researcher_see_the_live_projects(
    client: TestClient, db: Session, admin: User, researcher: User, username: str
) -> None:
    make_project(db, admin, "Zeta")
    make_project(db, admin, "Alpha")
    make_project(db, admin, "Old", archived=True)
    web_login(client, username)

    response = client.get("/projects")
    assert response.status_code == 200
    assert listed_names(response.text) == ["Alpha", "Zeta"]
    assert '<a href="/projects?archived=true">Show archived</a>' in response.text
    # Only admins are offered the create form.
    assert ('href="/projects/new"' in response.text) is (username == "root-admin")


def test_archived_projects_show_only_when_asked(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    make_project(db, admin, "Live")
    make_project(db, admin, "Old", archived=True)

    everything = client.get("/projects", params={"archived": "true"})
    assert everything.status_code == 200
    assert listed_names(everything.text) == ["Live", "Old"]
    assert everything.text.count('<span class="tag off">archived</span>') == 1
    assert '<a href="/projects">Hide archived</a>' in everything.text


def test_empty_list_says_so(client: TestClient, admin_csrf: str) -> None:
    response = client.get("/projects")
    assert response.status_code == 200
    assert '<p class="muted">No projects yet.</p>' in response.text


def test_researcher_sees_a_project_without_the_edit_link(
    client: TestClient, db: Session, admin: User, researcher: User
) -> None:
    project = make_project(db, admin, "Alpha")
    web_login(client, "rhea")
    response = client.get(f"/projects/{project.id}")
    assert response.status_code == 200
    assert 'data-testid="project-name">Alpha ' in response.text
    assert "<tr><td><code>helpful</code></td><td>Helpful</td></tr>" in response.text
    assert f'href="/projects/{project.id}/edit"' not in response.text


# --- creating -------------------------------------------------------------------------------


def test_new_project_form_is_prefilled_with_the_ten_default_flags(
    client: TestClient, admin_csrf: str
) -> None:
    response = client.get("/projects/new")
    assert response.status_code == 200
    assert "<h1>New project</h1>" in response.text
    assert form_value(response.text, "name") == ""
    assert form_value(response.text, "flags") == DEFAULT_FLAG_LINES
    assert len(form_value(response.text, "flags").splitlines()) == 10


def test_create_project_redirects_to_it_with_a_notice(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    response = client.post(
        "/projects",
        data={
            "name": "  Helpful chat  ",
            "description": "Rate answers & flag issues",
            "flags": "helpful: Helpful answer\n\n  rude :  Rude or dismissive \n",
            "csrf_token": admin_csrf,
        },
    )
    assert response.status_code == 303
    project = project_named(db, "Helpful chat")
    assert response.headers["location"] == f"/projects/{project.id}"
    assert project.description == "Rate answers & flag issues"
    assert project.label_schema == {
        "flags": [
            {"key": "helpful", "label": "Helpful answer"},
            {"key": "rude", "label": "Rude or dismissive"},
        ]
    }
    assert project.created_by_id == admin.id
    assert project.is_archived is False

    page = client.get(response.headers["location"])
    assert page.status_code == 200
    assert notice(page.text) == "Created Helpful chat."
    assert 'data-testid="project-description">\n<p>Rate answers &amp; flag issues</p>' in page.text
    assert "<tr><td><code>rude</code></td><td>Rude or dismissive</td></tr>" in page.text
    assert notice(client.get(response.headers["location"]).text) is None


def test_create_project_with_the_prefilled_flags_keeps_all_ten(
    client: TestClient, db: Session, admin_csrf: str
) -> None:
    flags = form_value(client.get("/projects/new").text, "flags")
    response = client.post(
        "/projects", data={"name": "Defaults", "flags": flags, "csrf_token": admin_csrf}
    )
    assert response.status_code == 303
    saved = project_named(db, "Defaults").label_schema["flags"]
    assert [f"{flag['key']}: {flag['label']}" for flag in saved] == DEFAULT_FLAG_LINES.splitlines()


def test_duplicate_project_name_is_409_with_the_values_kept(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    make_project(db, admin, "Alpha")
    before = snapshot(db)
    response = client.post(
        "/projects",
        data={
            "name": "Alpha",
            "description": "second try",
            "flags": "spam: Spam",
            "csrf_token": admin_csrf,
        },
    )
    assert response.status_code == 409
    assert field_errors(response.text) == {"name": "a project named 'Alpha' exists"}
    assert form_value(response.text, "name") == "Alpha"
    assert form_value(response.text, "description") == "second try"
    assert form_value(response.text, "flags") == "spam: Spam"
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("name", "flags", "errors"),
    [
        ("Fine", "Bad Key: x", {"flags": f"item 1 (key): {FLAG_KEY_RULE}"}),
        ("Fine", "good: Good\n9lives: Nine", {"flags": f"item 2 (key): {FLAG_KEY_RULE}"}),
        ("Fine", "nolabel", {"flags": "item 1 (label): String should have at least 1 character"}),
        (
            "Fine",
            "ok: Ok\n\nempty:   ",
            {"flags": "item 2 (label): String should have at least 1 character"},
        ),
        ("Fine", "same: One\nsame: Two", {"flags": "flag keys must be unique; repeated: same"}),
        ("   ", "ok: Ok", {"name": "a project needs a name"}),
    ],
    ids=["spaces-in-key", "key-starts-with-digit", "no-colon", "empty-label", "repeat", "no-name"],
)
def test_invalid_project_form_is_422_with_the_message(
    client: TestClient,
    db: Session,
    admin_csrf: str,
    name: str,
    flags: str,
    errors: dict[str, str],
) -> None:
    before = snapshot(db)
    response = client.post(
        "/projects", data={"name": name, "flags": flags, "csrf_token": admin_csrf}
    )
    assert response.status_code == 422
    assert field_errors(response.text) == errors
    assert form_value(response.text, "flags") == flags
    assert snapshot(db) == before


# --- editing --------------------------------------------------------------------------------


def test_edit_form_is_prefilled_from_the_project(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    project = make_project(db, admin, "Alpha")
    response = client.get(f"/projects/{project.id}/edit")
    assert response.status_code == 200
    assert "<h1>Edit Alpha</h1>" in response.text
    assert f'action="/projects/{project.id}/edit"' in response.text
    assert form_value(response.text, "name") == "Alpha"
    assert form_value(response.text, "description") == "About Alpha"
    assert form_value(response.text, "flags") == "helpful: Helpful\nrude: Rude"
    assert '<input type="checkbox" name="is_archived" >' in response.text


def test_rename_archive_and_restore_a_project(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    project = make_project(db, admin, "Alpha")
    edit = f"/projects/{project.id}/edit"

    renamed = client.post(
        edit,
        data={
            "name": "Beta",
            "description": "Renamed",
            "flags": "helpful: Helpful\nconcise: Concise",
            "csrf_token": admin_csrf,
        },
    )
    assert renamed.status_code == 303
    assert renamed.headers["location"] == f"/projects/{project.id}"
    assert notice(client.get(f"/projects/{project.id}").text) == "Saved Beta."
    saved = project_named(db, "Beta")
    assert saved.description == "Renamed"
    assert [flag["key"] for flag in saved.label_schema["flags"]] == ["helpful", "concise"]
    assert saved.is_archived is False

    archived = client.post(
        edit,
        data={
            "name": "Beta",
            "description": "Renamed",
            "flags": "helpful: Helpful",
            "is_archived": "on",
            "csrf_token": admin_csrf,
        },
    )
    assert archived.status_code == 303
    assert project_named(db, "Beta").is_archived is True
    assert listed_names(client.get("/projects").text) == []
    assert listed_names(client.get("/projects?archived=true").text) == ["Beta"]
    detail = client.get(f"/projects/{project.id}")
    assert 'data-testid="project-name">Beta <span class="tag off">archived</span>' in detail.text
    assert '<input type="checkbox" name="is_archived" checked>' in client.get(edit).text

    # An unticked checkbox is simply absent from the form: that restores the project.
    restored = client.post(
        edit, data={"name": "Beta", "flags": "helpful: Helpful", "csrf_token": admin_csrf}
    )
    assert restored.status_code == 303
    assert project_named(db, "Beta").is_archived is False
    assert listed_names(client.get("/projects").text) == ["Beta"]


def test_renaming_to_a_taken_name_is_409_and_changes_nothing(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    make_project(db, admin, "Alpha")
    beta = make_project(db, admin, "Beta")
    before = snapshot(db)
    response = client.post(
        f"/projects/{beta.id}/edit",
        data={"name": "Alpha", "flags": "helpful: Helpful", "csrf_token": admin_csrf},
    )
    assert response.status_code == 409
    assert "<h1>Edit Beta</h1>" in response.text
    assert field_errors(response.text) == {"name": "a project named 'Alpha' exists"}
    assert form_value(response.text, "name") == "Alpha"
    assert snapshot(db) == before


def test_invalid_edit_is_422_and_changes_nothing(
    client: TestClient, db: Session, admin: User, admin_csrf: str
) -> None:
    project = make_project(db, admin, "Alpha")
    before = snapshot(db)
    response = client.post(
        f"/projects/{project.id}/edit",
        data={"name": "Alpha", "flags": "Bad Key: x", "csrf_token": admin_csrf},
    )
    assert response.status_code == 422
    assert field_errors(response.text) == {"flags": f"item 1 (key): {FLAG_KEY_RULE}"}
    assert snapshot(db) == before


# --- who may do what ------------------------------------------------------------------------


def test_labeler_gets_403_on_every_project_page(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    project = make_project(db, admin, "Alpha")
    csrf = web_login(client, "lena")
    before = snapshot(db)
    staff_only = "this needs the admin or researcher role"
    admin_only = "this needs the admin role"
    requests: list[tuple[str, str, str]] = [
        ("GET", "/projects", staff_only),
        ("GET", "/projects?archived=true", staff_only),
        ("GET", f"/projects/{project.id}", staff_only),
        ("GET", "/projects/new", admin_only),
        ("GET", f"/projects/{project.id}/edit", admin_only),
        ("POST", "/projects", admin_only),
        ("POST", f"/projects/{project.id}/edit", admin_only),
    ]
    for method, path, message in requests:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(
                path, data={"name": "Hijack", "flags": "x: X", "csrf_token": csrf}
            )
        assert response.status_code == 403, (method, path)
        assert error_message(response.text) == message
    assert snapshot(db) == before


def test_researcher_gets_403_on_create_and_edit(
    client: TestClient, db: Session, admin: User, researcher: User
) -> None:
    project = make_project(db, admin, "Alpha")
    csrf = web_login(client, "rhea")
    before = snapshot(db)
    for method, path in (
        ("GET", "/projects/new"),
        ("GET", f"/projects/{project.id}/edit"),
        ("POST", "/projects"),
        ("POST", f"/projects/{project.id}/edit"),
    ):
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(
                path,
                data={"name": "Hijack", "flags": "x: X", "is_archived": "on", "csrf_token": csrf},
            )
        assert response.status_code == 403, (method, path)
        assert error_message(response.text) == "this needs the admin role"
    assert snapshot(db) == before


def test_unknown_project_id_is_a_404_page(client: TestClient, db: Session, admin_csrf: str) -> None:
    before = snapshot(db)
    for method, path in (
        ("GET", "/projects/999999"),
        ("GET", "/projects/999999/edit"),
        ("POST", "/projects/999999/edit"),
    ):
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(
                path, data={"name": "Ghost", "flags": "x: X", "csrf_token": admin_csrf}
            )
        assert response.status_code == 404, (method, path)
        assert "<h1>Not found</h1>" in response.text
        assert error_message(response.text) == "no project with id 999999"
    assert snapshot(db) == before


# --- the hub (issue 16) -----------------------------------------------------------------------


def hub_text(testid: str, page: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</(?:div|p|span|tr)>', page, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) for text in found]


def test_the_hub_shows_progress_agreement_spend_snapshots_and_runs(
    client: TestClient, db: Session, settings: Settings, admin: User
) -> None:
    world = build_world(db)
    world.project.cost_per_comparison = Decimal("0.50")
    world.project.cost_per_demonstration = Decimal("2.00")
    base = make_model(db, settings, "tiny-base")
    snapshots = [make_snapshot(db, settings, world.project, train=8, test=2) for _ in range(6)]
    run = make_run(db, world.project, base, snapshots[0])
    # The world's comparisons were stored without assignments; two submitted ones on t1.
    now = utcnow()
    for labeler in (world.ann, world.bob):
        db.add(
            Assignment(
                task_id=world.t1.id,
                labeler_id=labeler.id,
                status=AssignmentStatus.submitted,
                leased_at=now,
                lease_expires_at=now + timedelta(minutes=10),
                finished_at=now,
            )
        )
    db.commit()
    web_login(client, admin.username)

    page = client.get(f"/projects/{world.project.id}").text

    # Labels: chat's two tasks and gold's one at overlap 3; the figures as the agreement
    # page and the dashboard give them (37.0% on 27 labeler pairs; 10 comparisons at 0.50).
    assert hub_text("hub-labels", page) == ["2 of 9"]
    assert hub_text("hub-agreement", page) == ["37.0%"]
    assert hub_text("hub-agreement-n", page) == ["n = 27 labeler pairs · details"]
    assert hub_text("hub-spend", page) == ["5.00"]
    assert hub_text("hub-spend-note", page) == ["0 demonstrations, 10 comparisons"]
    assert hub_text("hub-queue-progress", page) == [
        "2 of 6 labels · 2 tasks",
        "0 of 0 labels · 0 tasks",
        "0 of 3 labels · 1 task",
    ]
    assert re.findall(
        r'<a href="/queues/(\d+)">([^<]+)</a>\s*'
        r'<svg class="progress-bar" role="img" aria-label="([^"]+)"',
        page,
    ) == [
        (str(world.chat.id), world.chat.name, "33.3% done"),
        (str(world.demos.id), world.demos.name, "0% done"),
        (str(world.gold.id), world.gold.name, "0.0% done"),
    ]
    # The five newest snapshots, newest first, and a link to all six.
    assert re.findall(r'data-testid="hub-snapshot-row"><td><a href="/snapshots/(\d+)"', page) == [
        str(snapshot.id) for snapshot in reversed(snapshots[1:])
    ]
    assert f'<a href="/projects/{world.project.id}/datasets">All snapshots (6)</a>' in page
    run_rows = re.findall(r'<tr data-testid="hub-run-row">(.*?)</tr>', page, re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in run_rows] == [
        f"Run {run.id} sft queued 0%"
    ]
    assert f'<a href="/projects/{world.project.id}/runs">All runs (1)</a>' in page
    # The flags moved below, into a closed section of their own.
    assert page.index('data-testid="hub-runs"') < page.index('data-testid="project-schema"')


def test_an_empty_hub_says_what_to_do_next(client: TestClient, db: Session, admin: User) -> None:
    project = make_project(db, admin, "Fresh")
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}").text

    assert hub_text("hub-labels", page) == ["0 of 0"]
    assert hub_text("hub-agreement", page) == ["—"]
    assert hub_text("hub-agreement-n", page) == ["needs two labelers on a task · what to do"]
    assert hub_text("hub-spend", page) == ["0.00"]
    assert hub_text("hub-no-queues", page) == [
        "No queues yet: add a queue so labelers have something to work on."
    ]
    assert hub_text("hub-no-snapshots", page) == [
        "No snapshots yet: snapshot the labels in a training format on the Datasets tab."
    ]
    assert hub_text("hub-no-runs", page) == [
        "No runs yet: launch one from a snapshot on the Runs tab."
    ]


def test_every_project_page_has_the_same_tabs_with_its_own_marked(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db, admin, "Tabs")
    web_login(client, admin.username)
    base = f"/projects/{project.id}"
    expected = [
        ("Overview", base), ("Prompts", f"{base}/prompts"), ("Data", f"{base}/data"),
        ("Queues", f"{base}/queues"),
        ("Guideline", f"{base}/guidelines"), ("Dashboard", f"{base}/dashboard"),
        ("Agreement", f"{base}/agreement"), ("Review", f"{base}/review"),
        ("Datasets", f"{base}/datasets"), ("Runs", f"{base}/runs"),
        ("Generate", f"{base}/generate"), ("Principles", f"{base}/principles"),
        ("Evaluations", f"{base}/evaluations"),
        ("Rounds", f"{base}/rounds"),
    ]  # fmt: skip
    for label, url in expected:
        page = client.get(url)
        assert page.status_code == 200, url
        nav = re.search(r'<nav class="tabs"[^>]*>(.*?)</nav>', page.text, re.S)
        assert nav is not None, url
        tabs = re.findall(
            r'<a href="([^"]+)" data-testid="[^"]+"( aria-current="page")?>([^<]+)</a>',
            nav.group(1),
        )
        assert [(text, href) for href, _, text in tabs] == expected, url
        assert [text for _, current, text in tabs if current] == [label], url
