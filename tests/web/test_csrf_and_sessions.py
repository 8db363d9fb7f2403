"""CSRF on every web form, and the life of a browser session: login, expiry, logout, limits."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.deps import SESSION_COOKIE
from app.models import (
    ApiToken,
    Assignment,
    Comparison,
    ComparisonItem,
    GuidelineVersion,
    LabelSource,
    LoginAttempt,
    ModelRole,
    Principle,
    Queue,
    QueueKind,
    QueueLabeler,
    Role,
    Run,
    RunStatus,
    User,
    UserSession,
)
from app.models.base import utcnow
from app.schemas.labeling import DemonstrationSubmit
from app.schemas.projects import ProjectCreate
from app.services import assignments, projects
from app.services.submitting import submit_demonstration
from app.settings import Settings
from app.web.csrf import ANON_COOKIE
from tests.conftest import PASSWORD, csrf_from, make_token, make_user, web_login
from tests.factories import (
    make_comparison_tasks,
    make_prompt,
    make_queue,
    make_responses,
    make_task,
    publish_guideline,
)
from tests.training_factories import make_model, make_run, make_snapshot, model_folder
from tests.web.helpers import snapshot

NEW_PASSWORD = "an entirely new secret"
CSRF_MESSAGE = "the form's security token is missing or stale; reload the page and try again"

# Every POST route of the web app: a form that would succeed with the right CSRF token, and
# the status it then answers. A new route must be added here (see the coverage test).
WEB_FORMS: dict[str, tuple[dict[str, str], int]] = {
    "/login": ({"username": "root-admin", "password": PASSWORD, "next": "/projects"}, 303),
    "/logout": ({}, 303),
    "/account/password": (
        {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
        303,
    ),
    "/account/tokens": ({"name": "scripts"}, 201),
    "/account/tokens/{token_id}/revoke": ({}, 303),
    "/admin/users": ({"username": "newbie", "role": "labeler", "password": PASSWORD}, 303),
    "/admin/users/{user_id}/role": ({"role": "researcher"}, 303),
    "/admin/users/{user_id}/deactivate": ({}, 303),
    "/admin/users/{user_id}/activate": ({}, 303),
    "/admin/users/{user_id}/reset-password": ({}, 200),
    "/projects": ({"name": "Fresh", "flags": "helpful: Helpful"}, 303),
    "/projects/{project_id}/edit": ({"name": "Renamed", "flags": "helpful: Helpful"}, 303),
    "/projects/{project_id}/guidelines": ({"body": "Be kinder.", "note": "kinder"}, 303),
    "/projects/{project_id}/guidelines/{version}/publish": ({}, 303),
    "/projects/{project_id}/queues": ({"name": "Fresh queue", "kind": "comparison"}, 303),
    "/queues/{queue_id}/edit": (
        {
            "name": "Renamed",
            "overlap": "1",
            "priority": "0",
            "lease_seconds": "1800",
            "max_active_leases": "3",
        },
        303,
    ),
    "/queues/{queue_id}/pause": ({}, 303),
    "/queues/{queue_id}/resume": ({}, 303),
    "/queues/{queue_id}/labelers": ({}, 303),
    "/queues/{queue_id}/tasks": ({"all_untasked": "on"}, 303),
    "/account/profile": ({"age_range": "25-34", "first_language": "Welsh"}, 303),
    # The labeler's workbench (a labeler's session; see WORKBENCH below).
    "/work/queues/{queue_id}/start": ({}, 303),
    "/work/assignments/{assignment_id}/comparison": (
        {"score_A": "6", "rank_A": "1", "score_B": "3", "rank_B": "2"},
        303,
    ),
    "/work/assignments/{assignment_id}/demonstration": ({"turn": "An old pond."}, 303),
    "/work/assignments/{assignment_id}/skip": ({"reason": "unclear_prompt"}, 303),
    "/work/assignments/{assignment_id}/renew": ({}, 303),
    "/work/assignments/{assignment_id}/draft": ({}, 200),
    "/work/projects/{project_id}/guideline/read": ({}, 303),
    "/work/preview": ({"turn": "*hi*"}, 200),
    # Training pages; "{...}" in a value is filled from path_ids like the path.
    "/projects/{project_id}/runs": (
        {"kind": "sft", "base_model_id": "{model_id}", "snapshot_id": "{snapshot_id}"},
        303,
    ),
    "/projects/{project_id}/models": ({"name": "fresh", "path": "models/fresh"}, 303),
    "/runs/{run_id}/cancel": ({}, 303),
    "/runs/{run_id}/resume": ({}, 303),
    # Datasets pages: each starts a job (an import also sends a file: see UPLOADS).
    "/projects/{project_id}/datasets/snapshots": ({"name": "Fresh", "kind": "prompts"}, 303),
    "/projects/{project_id}/datasets/imports": ({"on_error": "skip"}, 303),
    "/snapshots/{snapshot_id}/supersede": ({"name": "Newer"}, 303),
    # The loop's pages: an evaluation, and the reward model audit's two actions.
    "/projects/{project_id}/evaluations": (
        {
            "model_a_id": "{model_id}",
            "model_b_id": "{other_policy_id}",
            "prompt_ids": "{prompt_id}",
        },
        303,
    ),
    "/projects/{project_id}/models/{reward_model_id}/audit/requeue": (
        {
            "queue_id": "{queue_id}",
            "scope": "selected",
            "pair": "{audit_winner_id}-{audit_loser_id}",
        },
        303,
    ),
    "/projects/{project_id}/models/{reward_model_id}/audit/score": ({}, 303),
    # The prompts pages.
    "/projects/{project_id}/prompts": (
        {"role": "user", "content": "Hello?", "response": "Hi.", "action": "save"},
        303,
    ),
    "/projects/{project_id}/prompts/batch": ({"batch": '{{"prompt": "Batch?"}}'}, 303),
    "/projects/{project_id}/prompts/{prompt_id}/category": ({"category": "chat"}, 303),
    "/projects/{project_id}/prompts/{prompt_id}/responses": ({"content": "Another."}, 303),
    "/projects/{project_id}/prompts/{prompt_id}/responses/{response_id}/edit": (
        {"content": "Edited."},
        303,
    ),
    "/projects/{project_id}/prompts/{prompt_id}/tasks": ({"queue_id": "{queue_id}"}, 303),
    "/comparisons/{comparison_id}/review": ({"verdict": "rejected", "reason": "unread"}, 303),
    "/demonstrations/{demonstration_id}/review": ({"verdict": "accepted"}, 303),
    "/tasks/{task_id}/send-back": ({}, 303),
    "/projects/{project_id}/generate": (
        {"base_model_id": "{model_id}", "prompt_ids": "{prompt_id}"},
        303,
    ),
    # AI judges: a judge run, a template version, the judge's disagreements sent back.
    "/projects/{project_id}/judge": (
        {"model_id": "{reward_model_id}", "queue_id": "{audit_queue_id}"},
        303,
    ),
    "/projects/{project_id}/judge-templates": ({"body": "Rank {{responses}}."}, 303),
    "/projects/{project_id}/agreement/judges/send-back": ({"task_id": "{task_id}"}, 303),
    # Principles, a critique run on the audited queue, and the judge's suggestions.
    "/projects/{project_id}/principles": (
        {"name": "kind", "critique_request": "Unkind?", "revision_request": "Be kinder."},
        303,
    ),
    "/projects/{project_id}/principles/{principle_id}/edit": (
        {"name": "honest", "critique_request": "False?", "revision_request": "Be true."},
        303,
    ),
    "/projects/{project_id}/principles/{principle_id}/retire": ({}, 303),
    "/projects/{project_id}/principles/critique": (
        {"base_model_id": "{model_id}", "queue_id": "{audit_queue_id}"},
        303,
    ),
    "/queues/{queue_id}/suggestions": ({"mode": "after"}, 303),
}
# Files sent with a form, beside its fields.
UPLOADS: dict[str, dict[str, tuple[str, bytes]]] = {
    "/projects/{project_id}/datasets/imports": {"file": ("rows.jsonl", b'{"prompt": "Hi?"}\n')},
}
WORKBENCH = sorted(path for path in WEB_FORMS if path.startswith("/work/"))
# Written and in WEB_FORMS, but their router may not be included in app/web yet; the tests
# check them once they are. Remove an entry when its route is in the app for good.
PENDING: set[str] = set()

# --- helpers --------------------------------------------------------------------------------


def _texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found) for found in re.findall(pattern, page, re.S)]


def notice(page: str) -> str | None:
    found = _texts(r'data-testid="notice">(.*?)</p>', page)
    return found[0] if found else None


def error_message(page: str) -> str:
    found = _texts(r'data-testid="error-message">(.*?)</p>', page)
    assert len(found) == 1, page
    return found[0]


def login_error(page: str) -> str | None:
    found = _texts(r'data-testid="login-error">(.*?)</p>', page)
    return found[0] if found else None


def hidden_next(page: str) -> str:
    found = _texts(r'<input type="hidden" name="next" value="([^"]*)">', page)
    assert len(found) == 1, page
    return found[0]


def web_post_paths(app: FastAPI) -> list[str]:
    """Every POST route of the app outside /api, found through app.routes.

    Since FastAPI 0.137 an included router sits in app.routes as one nested entry, so the
    routes are flattened with iter_route_contexts (what FastAPI's own OpenAPI code uses);
    older versions list every route in app.routes directly."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        found = [(route, route.path, route.methods) for route in app.routes]
    else:
        found = [(each.route, each.path, each.methods) for each in iter_route_contexts(app.routes)]
    return sorted(
        path
        for route, path, methods in found
        if isinstance(route, APIRoute) and "POST" in (methods or ()) and not path.startswith("/api")
    )


def login(
    client: TestClient, username: str, password: str = PASSWORD, next_url: str | None = None
) -> httpx.Response:
    page = client.get("/login")
    data = {"username": username, "password": password, "csrf_token": csrf_from(page.text)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data)


def session_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(UserSession)) or 0


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as other:
        yield other


@pytest.fixture
def path_ids(db: Session, settings: Settings, admin: User, labeler: User) -> dict[str, int]:
    """Real ids for the path parameters of WEB_FORMS."""
    make_token(db, admin, "admin-token")
    token = db.scalar(select(ApiToken).where(ApiToken.user_id == admin.id))
    assert token is not None
    project = projects.create_project(db, ProjectCreate(name="Alpha"), acting=admin)
    # A draft to publish (and to save the next version after).
    db.add(GuidelineVersion(project_id=project.id, version=1, body="Be kind."))
    # A comparison queue listing the labeler (so clearing the list changes it), and a prompt
    # with two responses but no task in it yet (so "all untasked" adds one).
    queue = make_queue(db, project, open_to_all=False)
    db.add(QueueLabeler(queue_id=queue.id, user_id=labeler.id))
    prompt = make_prompt(db, project)
    prompt_responses = make_responses(db, prompt, 2)
    # A registered model, a model folder to register, a snapshot to train on and a queued run.
    model = make_model(db, settings, "base")
    model_folder(settings.data_dir / "models", "fresh")
    training = make_snapshot(db, settings, project)
    run = make_run(db, project, model, training)
    other_policy = make_model(db, settings, "other-policy")
    # A reward model and a judged pair in a queue of its own, so a requeue makes a task.
    reward = make_model(db, settings, "rm", ModelRole.reward, base=model, project=project)
    audit_prompt = make_prompt(db, project, "Audit me.")
    audited = make_responses(db, audit_prompt, 2)
    audit_task = make_task(db, make_queue(db, project, name="audited"), audit_prompt, audited)
    judged = Comparison(
        task_id=audit_task.id,
        prompt_id=audit_prompt.id,
        labeler_id=labeler.id,
        source=LabelSource.labeler,
    )
    db.add(judged)
    db.flush()
    db.add_all(
        ComparisonItem(comparison_id=judged.id, response_id=response.id, rank=rank)
        for rank, response in enumerate(audited, start=1)
    )
    # A principle to edit, retire and critique by.
    principle = Principle(
        project_id=project.id,
        name="honest",
        critique_request="Is it true?",
        revision_request="Make it true.",
    )
    db.add(principle)
    # A written demonstration, for its review route.
    written_queue = make_queue(db, project, QueueKind.demonstration, name="written")
    make_task(db, written_queue, make_prompt(db, project, "Write a haiku."))
    db.commit()
    writing = assignments.lease_next_task(db, written_queue.id, labeler)
    assert writing is not None
    written = submit_demonstration(
        db,
        writing.id,
        labeler,
        DemonstrationSubmit(messages=[{"role": "assistant", "content": "Old pond, a frog."}]),
    )
    db.commit()
    return {
        "comparison_id": judged.id,
        "demonstration_id": written.label_id,
        "task_id": audit_task.id,
        # A queue with a task of two responses: a judge run has something to label.
        "audit_queue_id": audit_task.queue_id,
        "model_id": model.id,
        "other_policy_id": other_policy.id,
        "prompt_id": prompt.id,
        "response_id": prompt_responses[0].id,
        "reward_model_id": reward.id,
        "audit_winner_id": audited[0].id,
        "audit_loser_id": audited[1].id,
        "snapshot_id": training.id,
        "principle_id": principle.id,
        "run_id": run.id,
        "user_id": labeler.id,
        "token_id": token.id,
        "project_id": project.id,
        "version": 1,
        "queue_id": queue.id,
        # Any id fills the workbench's paths here: the token is checked before the owner.
        "assignment_id": 1,
    }


# --- CSRF -----------------------------------------------------------------------------------


def test_every_web_post_route_has_a_csrf_case(app: FastAPI) -> None:
    routed = web_post_paths(app)
    assert routed == sorted(set(WEB_FORMS) - (PENDING - set(routed)))
    assert not PENDING - WEB_FORMS.keys(), "a pending route needs its form too"


def test_every_web_post_without_the_right_csrf_token_is_refused(
    app: FastAPI,
    client: TestClient,
    other_client: TestClient,
    db: Session,
    admin: User,
    path_ids: dict[str, int],
) -> None:
    csrf = web_login(client, admin.username)
    # A real token, but of somebody else's session.
    someone_elses = web_login(other_client, "lena")
    assert someone_elses != csrf
    before = snapshot(db)

    paths = web_post_paths(app)
    assert len(paths) == len(WEB_FORMS.keys() - (PENDING - set(paths)))
    for template in paths:
        form, _ = WEB_FORMS[template]
        path = template.format(**path_ids)
        attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
            ("no token", form, {}),
            ("empty token", {**form, "csrf_token": ""}, {}),
            ("wrong token", {**form, "csrf_token": csrf[:-4] + "AAAA"}, {}),
            ("other session's token", {**form, "csrf_token": someone_elses}, {}),
            ("wrong header", form, {"X-CSRF-Token": "not-the-token"}),
        ]
        for what, data, headers in attempts:
            response = client.post(path, data=data, headers=headers)
            assert response.status_code == 403, (path, what)
            assert error_message(response.text) == CSRF_MESSAGE, (path, what)
        assert snapshot(db) == before, path

    # The refused logout did not log anyone out.
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("template", sorted(set(WEB_FORMS) - set(WORKBENCH)))
def test_x_csrf_token_header_is_accepted_in_place_of_the_form_field(
    app: FastAPI,
    client: TestClient,
    db: Session,
    admin: User,
    labeler: User,
    path_ids: dict[str, int],
    template: str,
) -> None:
    if template in PENDING and template not in web_post_paths(app):
        pytest.skip(f"{template} is not included in the app yet")
    csrf = web_login(client, admin.username)
    if template.endswith("/activate"):
        labeler.is_active = False
        db.commit()
    if template == "/runs/{run_id}/resume":
        run = db.get(Run, path_ids["run_id"])
        assert run is not None
        run.status = RunStatus.failed
        db.commit()
    elif template.endswith("/resume"):
        queue = db.get(Queue, path_ids["queue_id"])
        assert queue is not None
        queue.is_paused = True
        db.commit()
    form, status = WEB_FORMS[template]
    form = {name: value.format(**path_ids) for name, value in form.items()}
    before = snapshot(db)
    response = client.post(
        template.format(**path_ids),
        data=form,
        files=UPLOADS.get(template),
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == status, response.text
    assert snapshot(db) != before


@pytest.fixture
def work_ids(db: Session, admin: User, labeler: User) -> dict[str, int]:
    """A project with a published guideline and one task of each kind leased to the labeler,
    for the workbench's forms; {assignment_id} is the task the form is about."""
    project = projects.create_project(db, ProjectCreate(name="Bench"), acting=admin)
    publish_guideline(db, project, 1)
    comparison_queue = make_queue(db, project, QueueKind.comparison)
    make_comparison_tasks(db, comparison_queue, project, 2, responses_each=2)
    demonstration_queue = make_queue(db, project, QueueKind.demonstration)
    make_task(db, demonstration_queue, make_prompt(db, project, "Write a limerick."))
    # Start resumes a task already held, so it gets a queue of its own to lease from.
    start_queue = make_queue(db, project, QueueKind.comparison, name="start here")
    make_comparison_tasks(db, start_queue, project, 1, responses_each=2)
    db.commit()
    comparison = assignments.lease_next_task(db, comparison_queue.id, labeler)
    demonstration = assignments.lease_next_task(db, demonstration_queue.id, labeler)
    assert comparison is not None and demonstration is not None
    return {
        "project_id": project.id,
        "queue_id": start_queue.id,
        "comparison": comparison.id,
        "demonstration": demonstration.id,
    }


@pytest.mark.parametrize("template", WORKBENCH)
def test_x_csrf_token_header_is_accepted_on_the_workbench(
    client: TestClient, db: Session, labeler: User, work_ids: dict[str, int], template: str
) -> None:
    csrf = web_login(client, labeler.username)
    kind = "demonstration" if template.endswith("/demonstration") else "comparison"
    path = template.format(assignment_id=work_ids[kind], **work_ids)
    form, status = WEB_FORMS[template]
    headers = {"X-CSRF-Token": csrf}
    if template.endswith("/renew"):
        # Only an expired lease is taken again.
        expired = db.get(Assignment, work_ids["comparison"])
        assert expired is not None
        expired.leased_at = utcnow() - timedelta(hours=2)
        expired.lease_expires_at = utcnow() - timedelta(hours=1)
        db.commit()
    before = snapshot(db)

    if template.endswith("/draft"):
        response = client.post(path, json={"content": {"form": {}}}, headers=headers)
    else:
        response = client.post(path, data=form, headers=headers)

    assert response.status_code == status, response.text
    if template == "/work/preview":
        # It only renders; nothing is stored.
        assert "<em>hi</em>" in response.text
        assert snapshot(db) == before
    else:
        assert snapshot(db) != before


def test_login_form_csrf_is_bound_to_the_visitors_cookie(
    client: TestClient, db: Session, admin: User
) -> None:
    page = client.get("/login")
    token = csrf_from(page.text)
    assert client.cookies[ANON_COOKIE] == token
    before = snapshot(db)

    # A token the attacker got from their own visit does not match this browser's cookie.
    with TestClient(client.app, base_url="http://testserver") as attacker:
        theirs = csrf_from(attacker.get("/login").text)
    assert theirs != token
    data = {"username": "root-admin", "password": PASSWORD}
    assert client.post("/login", data={**data, "csrf_token": theirs}).status_code == 403
    # A cookie the attacker made up is not signed with the app's key.
    client.cookies.set(ANON_COOKIE, "made-up.0000")
    refused = client.post("/login", data={**data, "csrf_token": "made-up.0000"})
    assert refused.status_code == 403
    assert error_message(refused.text) == CSRF_MESSAGE
    assert snapshot(db) == before


def test_logout_without_a_session_needs_no_token(client: TestClient) -> None:
    response = client.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert notice(client.get("/login").text) is None


# --- sessions -------------------------------------------------------------------------------


def test_forged_session_cookie_is_sent_to_login(client: TestClient, admin: User) -> None:
    client.cookies.set(SESSION_COOKIE, "forged-" + "x" * 40)
    home = client.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == "/login"
    page = client.get("/projects")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fprojects"
    # The login form itself is shown, not a redirect loop.
    assert client.get("/login").status_code == 200


def test_expired_session_is_sent_to_login(client: TestClient, db: Session, admin: User) -> None:
    web_login(client, admin.username)
    assert client.get("/").status_code == 200
    db.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()

    response = client.get("/admin/users")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fadmin%2Fusers"
    assert client.get("/login").status_code == 200


def test_logout_ends_the_session_even_if_the_cookie_is_replayed(
    client: TestClient, db: Session, admin: User
) -> None:
    csrf = web_login(client, admin.username)
    cookie = client.cookies[SESSION_COOKIE]
    assert session_count(db) == 1

    response = client.post("/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert SESSION_COOKIE not in client.cookies
    assert session_count(db) == 0
    assert notice(client.get("/login").text) == "You are logged out."

    client.cookies.set(SESSION_COOKIE, cookie)
    replayed = client.get("/")
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/login"


def test_login_page_redirects_a_logged_in_user(client: TestClient, admin: User) -> None:
    web_login(client, admin.username)
    assert client.get("/login?next=/projects").headers["location"] == "/projects"
    assert client.get("/login?next=//evil.example").headers["location"] == "/"


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [
        ("/projects?archived=true", "/projects?archived=true"),
        ("/admin/users", "/admin/users"),
        ("//evil.example", "/"),
        ("//evil.example/path", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_login_next_honours_only_same_site_paths(
    client: TestClient, admin: User, next_url: str, landing: str
) -> None:
    page = client.get("/login", params={"next": next_url})
    assert hidden_next(page.text) == landing
    response = login(client, admin.username, next_url=next_url)
    assert response.status_code == 303
    assert response.headers["location"] == landing


def test_login_returns_to_the_page_that_asked_for_it(client: TestClient, admin: User) -> None:
    asked = client.get("/projects?archived=true")
    assert asked.status_code == 303
    assert asked.headers["location"] == "/login?next=%2Fprojects%3Farchived%3Dtrue"
    page = client.get(asked.headers["location"])
    assert hidden_next(page.text) == "/projects?archived=true"
    response = client.post(
        "/login",
        data={
            "username": admin.username,
            "password": PASSWORD,
            "next": hidden_next(page.text),
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.headers["location"] == "/projects?archived=true"


def test_sixth_login_after_five_failures_is_rate_limited(
    client: TestClient, db: Session, labeler: User, admin: User
) -> None:
    for attempt in range(5):
        failed = login(client, "lena", f"wrong password {attempt}")
        assert failed.status_code == 401, attempt
        assert login_error(failed.text) == "wrong username or password"

    # Even the right password is refused now, and the username is matched case-insensitively.
    for username in ("lena", " LENA "):
        limited = login(client, username, PASSWORD)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 900
        assert login_error(limited.text) == "too many failed logins; try again in 15 minute(s)"
        assert f'name="username" type="text" value="{username}"' in limited.text
    assert session_count(db) == 0
    assert db.scalar(select(func.count()).select_from(LoginAttempt)) == 5

    # The limit is per username: others from the same address still log in.
    assert login(client, admin.username).status_code == 303


def test_deactivated_user_learns_it_only_with_the_right_password(
    client: TestClient, db: Session
) -> None:
    make_user(db, "gone", Role.labeler, active=False)
    wrong = login(client, "gone", "not the password")
    assert wrong.status_code == 401
    assert login_error(wrong.text) == "wrong username or password"
    right = login(client, "gone", PASSWORD)
    assert right.status_code == 401
    assert login_error(right.text) == "this account is deactivated; ask an admin"
    assert SESSION_COOKIE not in client.cookies
    assert session_count(db) == 0


def test_user_whose_password_must_change_is_sent_there_after_login(
    client: TestClient, db: Session, labeler: User
) -> None:
    labeler.must_change_password = True
    db.commit()
    response = login(client, "lena", next_url="/projects")
    assert response.status_code == 303
    assert response.headers["location"] == "/account/password"
    assert client.get("/account/password").status_code == 200


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/", "/login"),
        ("/projects", "/login?next=%2Fprojects"),
        ("/account/tokens", "/login?next=%2Faccount%2Ftokens"),
    ],
)
def test_htmx_request_without_login_gets_401_with_hx_redirect(
    client: TestClient, path: str, target: str
) -> None:
    response = client.get(path, headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == target
    assert "location" not in response.headers
    assert response.text == ""


def test_htmx_request_with_an_expired_session_gets_401_with_hx_redirect(
    client: TestClient, db: Session, admin: User
) -> None:
    web_login(client, admin.username)
    db.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    response = client.get("/admin/users", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login?next=%2Fadmin%2Fusers"


@pytest.mark.parametrize(
    ("sent_from", "target"),
    [
        (
            "http://testserver/work/assignments/7?x=1",
            "/login?next=%2Fwork%2Fassignments%2F7%3Fx%3D1",
        ),
        ("http://evil.example/work/assignments/7", "/login"),
        (None, "/login"),
    ],
    ids=["same-site", "other-site", "none"],
)
def test_an_htmx_post_after_the_session_ended_returns_to_the_page_it_came_from(
    client: TestClient, db: Session, labeler: User, sent_from: str | None, target: str
) -> None:
    """Not to the POST route itself, which has no page to come back to (a GET there is 405)."""
    csrf = web_login(client, labeler.username)
    db.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    headers = {"HX-Request": "true", "X-CSRF-Token": csrf}
    if sent_from:
        headers["HX-Current-URL"] = sent_from

    response = client.post("/work/assignments/7/skip", data={"reason": "other"}, headers=headers)

    assert response.status_code == 401
    assert response.headers["hx-redirect"] == target
