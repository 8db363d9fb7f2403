"""Queue pages: admins create, configure, staff and fill queues; researchers read; labelers
neither."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Project,
    Prompt,
    Queue,
    Response,
    ResponseSource,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.queues import QueueCreate
from app.services import queues
from app.services import tasks as task_service
from tests.conftest import make_user, web_login
from tests.services.test_reviews import three_judged  # noqa: F401  (a fixture)
from tests.web.helpers import snapshot

SETTINGS = {
    "overlap": "1",
    "max_overlap": "",
    "disagreement_tau": "",
    "priority": "0",
    "lease_seconds": "1800",
    "max_active_leases": "3",
    "open_to_all": "on",
}

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


def field_errors(page: str) -> dict[str, str]:
    """{field: message} for every field error, keyed by the input (or select) just above it."""
    found = re.findall(
        r'name="(\w+)"[^>]*>(?:[^<]*</textarea>|(?:\s*<option[^>]*>[^<]*</option>)*\s*</select>)?'
        r'\s*<p class="field-error"[^>]*>(.*?)</p>',
        page,
    )
    return {name: html.unescape(message) for name, message in found}


def input_value(page: str, name: str) -> str:
    textarea = re.search(rf'<textarea id="{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    if textarea:
        return html.unescape(textarea.group(1))
    found = re.search(rf'<input id="{name}" name="{name}" type="\w+"[^>]*value="([^"]*)"', page)
    assert found, f"no field {name!r}"
    return html.unescape(found.group(1))


def text_of(page: str, testid: str) -> str:
    found = _texts(rf'data-testid="{testid}">(.*?)</', page)
    assert found, f"no {testid!r} in page"
    return found[0]


def make_project(db: Session, name: str = "Chat") -> Project:
    project = Project(name=name, label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def make_prompt(db: Session, project: Project, responses: int = 0) -> Prompt:
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Hi"}],
        source="test",
        content_hash="0" * 64,
    )
    db.add(prompt)
    db.flush()
    db.add_all(
        Response(prompt_id=prompt.id, content=f"answer {i}", source=ResponseSource.imported)
        for i in range(responses)
    )
    db.commit()
    return prompt


def make_queue(db: Session, project: Project, admin: User, **fields: Any) -> Queue:
    data = QueueCreate(**{"name": "Rank", "kind": "comparison", **fields})
    return queues.create_queue(db, project.id, data, admin)


def stored(db: Session, queue_id: int) -> Queue:
    db.expire_all()
    return queues.get_queue(db, queue_id)


def task_prompts(db: Session, queue: Queue) -> list[int]:
    db.expire_all()
    query = select(Task.prompt_id).where(Task.queue_id == queue.id).order_by(Task.id)
    return list(db.scalars(query))


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def admin_csrf(client: TestClient, admin: User) -> str:
    return web_login(client, admin.username)


# --- a project's queues -----------------------------------------------------------------------


def test_project_page_links_to_its_queues(
    client: TestClient, project: Project, admin_csrf: str
) -> None:
    page = client.get(f"/projects/{project.id}")
    assert f'href="/projects/{project.id}/queues" data-testid="project-queues-link"' in page.text


@pytest.mark.parametrize("username", ["root-admin", "rhea"], ids=["admin", "researcher"])
def test_queue_list_shows_progress_and_eta(
    client: TestClient,
    db: Session,
    admin: User,
    researcher: User,
    project: Project,
    username: str,
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", name="Write", overlap=2)
    make_queue(db, project, admin, name="Compare", priority=3)
    tasks = task_service.add_tasks_from_prompts(db, queue.id, [make_prompt(db, project).id])
    now = utcnow()
    db.add(
        Assignment(
            task_id=tasks[0].id,
            labeler_id=make_user(db, "ann").id,
            status=AssignmentStatus.submitted,
            leased_at=now - timedelta(minutes=30),
            lease_expires_at=now + timedelta(minutes=10),
            finished_at=now - timedelta(minutes=10),
        )
    )
    db.commit()
    web_login(client, username)

    page = client.get(f"/projects/{project.id}/queues")

    assert page.status_code == 200
    assert _texts(r'<td><a href="/queues/\d+">(.*?)</a></td>', page.text) == ["Compare", "Write"]
    row = page.text.split(f'data-testid="queue-row-{queue.id}"')[1].split("</tr>")[0]
    assert text_of(row, "progress-done") == "1"
    assert text_of(row, "progress-in-progress") == "0"
    assert text_of(row, "progress-left") == "1"
    # 1 left at 1 an hour.
    assert text_of(row, "queue-eta") == "about 1 h 0 min"
    assert ('data-testid="queue-create-form"' in page.text) is (username == "root-admin")


def test_empty_project_says_so(client: TestClient, project: Project, admin_csrf: str) -> None:
    page = client.get(f"/projects/{project.id}/queues")
    assert '<p class="muted">No queues yet.</p>' in page.text
    assert input_value(page.text, "lease_seconds") == "1800"


def test_create_queue_from_the_form(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    response = client.post(
        f"/projects/{project.id}/queues",
        data={
            **SETTINGS,
            "name": "  Write answers ",
            "kind": "demonstration",
            "overlap": "2",
            "open_to_all": "",
            "csrf_token": admin_csrf,
        },
    )

    assert response.status_code == 303
    queue = db.scalars(select(Queue)).one()
    assert response.headers["location"] == f"/queues/{queue.id}"
    assert (queue.name, queue.kind.value, queue.overlap, queue.max_overlap) == (
        "Write answers",
        "demonstration",
        2,
        2,
    )
    assert (queue.disagreement_tau, queue.open_to_all, queue.created_by_id) == (
        None,
        False,
        admin.id,
    )
    page = client.get(response.headers["location"])
    assert notice(page.text) == "Created Write answers."
    assert text_of(page.text, "queue-name").startswith("Write answers ")


@pytest.mark.parametrize(
    ("fields", "errors", "status"),
    [
        ({"overlap": "0"}, {"overlap": "Input should be greater than or equal to 1"}, 422),
        ({"lease_seconds": "0"}, {"lease_seconds": "Input should be greater than 0"}, 422),
        (
            {"overlap": "3", "max_overlap": "2"},
            {"max_overlap": "max_overlap must be at least overlap (3)"},
            422,
        ),
        (
            {"disagreement_tau": "lots"},
            {
                "disagreement_tau": "Input should be a valid number, "
                "unable to parse string as a number"
            },
            422,
        ),
        ({"name": "Taken"}, {"name": "a queue named 'Taken' exists in this project"}, 409),
    ],
    ids=["overlap-0", "lease-0", "max-below-overlap", "tau-not-a-number", "duplicate"],
)
def test_invalid_create_form_keeps_the_values_and_changes_nothing(
    client: TestClient,
    db: Session,
    admin: User,
    project: Project,
    admin_csrf: str,
    fields: dict[str, str],
    errors: dict[str, str],
    status: int,
) -> None:
    make_queue(db, project, admin, name="Taken")
    before = snapshot(db)
    form = {**SETTINGS, "name": "Fresh", "kind": "comparison", **fields}

    response = client.post(
        f"/projects/{project.id}/queues", data={**form, "csrf_token": admin_csrf}
    )

    assert response.status_code == status
    assert field_errors(response.text) == errors
    for name in ("name", "overlap", "max_overlap", "lease_seconds", "disagreement_tau"):
        assert input_value(response.text, name) == form[name]
    assert snapshot(db) == before


# --- one queue --------------------------------------------------------------------------------


FORMS = ("queue-settings-form", "queue-labelers-form", "queue-tasks-form", "pause-toggle")


def test_admin_sees_every_form(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    queue = make_queue(db, project, admin, open_to_all=False, labeler_ids=[ann.id])

    page = client.get(f"/queues/{queue.id}")

    assert page.status_code == 200
    assert all(f'data-testid="{form}"' in page.text for form in FORMS)
    assert input_value(page.text, "name") == "Rank"
    assert input_value(page.text, "lease_seconds") == "1800"
    assert f'<option value="{ann.id}" selected>ann</option>' in page.text
    assert f'<option value="{bob.id}" >bob</option>' in page.text


def test_researcher_reads_a_queue_without_forms(
    client: TestClient, db: Session, admin: User, researcher: User, project: Project
) -> None:
    ann = make_user(db, "ann")
    queue = make_queue(db, project, admin, open_to_all=False, labeler_ids=[ann.id])
    web_login(client, "rhea")

    page = client.get(f"/queues/{queue.id}")

    assert page.status_code == 200
    assert not any(f'data-testid="{form}"' in page.text for form in FORMS)
    assert 'name="csrf_token"' not in page.text.split("<main>")[1]
    assert text_of(page.text, "queue-labelers") == "ann"
    assert "<tr><th>Lease</th><td>1800 s</td></tr>" in page.text


def test_progress_fragment_polls_until_the_work_is_done(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    [task] = task_service.add_tasks_from_prompts(db, queue.id, [make_prompt(db, project).id])

    fragment = client.get(f"/queues/{queue.id}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section class="panel" id="queue-progress"')
    assert "<html" not in fragment.text
    assert f'hx-get="/queues/{queue.id}/progress" hx-trigger="every 10s"' in fragment.text
    assert text_of(fragment.text, "progress-left") == "1"
    assert text_of(fragment.text, "progress-eta") == (
        "no pace yet (nothing submitted in the last hour)"
    )
    assert fragment.headers["vary"] == "HX-Request"

    now = utcnow()
    db.add(
        Assignment(
            task_id=task.id,
            labeler_id=make_user(db, "ann").id,
            status=AssignmentStatus.submitted,
            leased_at=now - timedelta(minutes=5),
            lease_expires_at=now + timedelta(minutes=25),
            finished_at=now - timedelta(minutes=1),
        )
    )
    db.commit()
    done = client.get(f"/queues/{queue.id}/progress")
    assert text_of(done.text, "progress-done") == "1"
    assert text_of(done.text, "progress-eta") == "nothing left to hand out"
    assert "hx-trigger" not in done.text


def test_save_settings(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin, disagreement_tau=0.2)
    response = client.post(
        f"/queues/{queue.id}/edit",
        data={
            **SETTINGS,
            "name": "Ranked",
            "overlap": "2",
            "max_overlap": "4",
            "priority": "-1",
            "open_to_all": "",
            "csrf_token": admin_csrf,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/queues/{queue.id}"
    saved = stored(db, queue.id)
    assert (saved.name, saved.overlap, saved.max_overlap, saved.priority) == ("Ranked", 2, 4, -1)
    assert (saved.disagreement_tau, saved.open_to_all) == (None, False)
    assert notice(client.get(f"/queues/{queue.id}").text) == "Saved Ranked."


@pytest.mark.parametrize(
    ("fields", "errors", "status"),
    [
        ({"overlap": "0"}, {"overlap": "Input should be greater than or equal to 1"}, 422),
        ({"lease_seconds": "0"}, {"lease_seconds": "Input should be greater than 0"}, 422),
        ({"name": "Taken"}, {"name": "a queue named 'Taken' exists in this project"}, 409),
    ],
    ids=["overlap-0", "lease-0", "duplicate"],
)
def test_invalid_settings_change_nothing(
    client: TestClient,
    db: Session,
    admin: User,
    project: Project,
    admin_csrf: str,
    fields: dict[str, str],
    errors: dict[str, str],
    status: int,
) -> None:
    make_queue(db, project, admin, name="Taken")
    queue = make_queue(db, project, admin, name="Mine")
    before = snapshot(db)
    form = {**SETTINGS, "name": "Mine", **fields}

    response = client.post(f"/queues/{queue.id}/edit", data={**form, "csrf_token": admin_csrf})

    assert response.status_code == status
    assert field_errors(response.text) == errors
    assert input_value(response.text, "name") == form["name"]
    assert snapshot(db) == before


def test_pause_and_resume(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin)
    paused = client.post(f"/queues/{queue.id}/pause", data={"csrf_token": admin_csrf})
    assert paused.status_code == 303
    assert stored(db, queue.id).is_paused is True
    page = client.get(f"/queues/{queue.id}")
    assert notice(page.text) == "Paused Rank."
    assert f'action="/queues/{queue.id}/resume"' in page.text

    resumed = client.post(f"/queues/{queue.id}/resume", data={"csrf_token": admin_csrf})
    assert resumed.status_code == 303
    assert stored(db, queue.id).is_paused is False


def test_set_labelers(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    queue = make_queue(db, project, admin, open_to_all=False)

    response = client.post(
        f"/queues/{queue.id}/labelers",
        data={"labeler_ids": [str(ann.id), str(bob.id)], "csrf_token": admin_csrf},
    )

    assert response.status_code == 303
    assert queues.labeler_ids(db, queue.id) == sorted([ann.id, bob.id])
    assert notice(client.get(f"/queues/{queue.id}").text) == "2 labelers listed for Rank."

    cleared = client.post(f"/queues/{queue.id}/labelers", data={"csrf_token": admin_csrf})
    assert cleared.status_code == 303
    assert queues.labeler_ids(db, queue.id) == []


def test_listing_a_researcher_is_422_and_changes_nothing(
    client: TestClient,
    db: Session,
    admin: User,
    researcher: User,
    project: Project,
    admin_csrf: str,
) -> None:
    ann = make_user(db, "ann")
    queue = make_queue(db, project, admin, labeler_ids=[ann.id])
    before = snapshot(db)

    response = client.post(
        f"/queues/{queue.id}/labelers",
        data={"labeler_ids": [str(researcher.id)], "csrf_token": admin_csrf},
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {
        "labeler_ids": (
            f"only active labelers can be listed: user {researcher.id} (rhea) has the "
            "researcher role"
        )
    }
    assert snapshot(db) == before


def test_add_tasks_by_prompt_id(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    first, second = make_prompt(db, project), make_prompt(db, project)

    response = client.post(
        f"/queues/{queue.id}/tasks",
        data={"prompt_ids": f" {second.id},\n{first.id} ", "csrf_token": admin_csrf},
    )

    assert response.status_code == 303
    assert task_prompts(db, queue) == [second.id, first.id]
    page = client.get(f"/queues/{queue.id}")
    assert notice(page.text) == "Added 2 tasks."
    assert text_of(page.text, "untasked-count") == "0"
    assert "Tasks 1 to 2 of 2." in page.text


def test_add_comparison_tasks_for_all_untasked_prompts_skips_the_short(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin)
    tasked, ready, short = (make_prompt(db, project, n) for n in (2, 3, 1))
    task_service.add_tasks_for_prompts(db, queue.id, [tasked.id])
    assert text_of(client.get(f"/queues/{queue.id}").text, "untasked-count") == "2"

    response = client.post(
        f"/queues/{queue.id}/tasks", data={"all_untasked": "on", "csrf_token": admin_csrf}
    )

    assert response.status_code == 303
    assert task_prompts(db, queue) == [tasked.id, ready.id]
    assert notice(client.get(f"/queues/{queue.id}").text) == (
        "Added 1 task; skipped 1 prompt with fewer than 2 responses."
    )
    assert short.id not in task_prompts(db, queue)


def test_adding_a_task_the_queue_already_has_is_409_naming_the_prompt(
    client: TestClient, db: Session, admin: User, project: Project, admin_csrf: str
) -> None:
    queue = make_queue(db, project, admin)
    tasked, fresh = make_prompt(db, project, 2), make_prompt(db, project, 2)
    (task,) = task_service.add_tasks_for_prompts(db, queue.id, [tasked.id]).tasks
    before = snapshot(db)

    response = client.post(
        f"/queues/{queue.id}/tasks",
        data={"prompt_ids": f"{fresh.id} {tasked.id}", "csrf_token": admin_csrf},
    )

    assert response.status_code == 409
    assert field_errors(response.text) == {
        "prompt_ids": f"{queue.name} already has a task with the same responses for prompt "
        f"{tasked.id} (task {task.id}): nothing was added (a new task for a prompt needs a "
        "different set of responses)"
    }
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"prompt_ids": "12 abc"}, "'abc' is not a prompt id"),
        ({"prompt_ids": "2147483648"}, "no prompt with id 2147483648"),
        ({"prompt_ids": ""}, "give at least one prompt id"),
        ({"prompt_ids": "{foreign}"}, "prompt {foreign} is not in this queue's project"),
        ({"prompt_ids": "{mine} {mine}"}, "prompt {mine} is listed twice"),
        (
            {"prompt_ids": "{mine}", "all_untasked": "on"},
            "give prompt ids or tick “all prompts without a task”, not both",
        ),
    ],
    ids=["not-a-number", "too-big", "empty", "other-project", "twice", "both"],
)
def test_bad_task_forms_are_422_and_add_nothing(
    client: TestClient,
    db: Session,
    admin: User,
    project: Project,
    admin_csrf: str,
    form: dict[str, str],
    message: str,
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    ids = {
        "mine": make_prompt(db, project).id,
        "foreign": make_prompt(db, make_project(db, "B")).id,
    }
    form = {key: value.format(**ids) for key, value in form.items()}
    before = snapshot(db)

    response = client.post(f"/queues/{queue.id}/tasks", data={**form, "csrf_token": admin_csrf})

    assert response.status_code == 422
    assert field_errors(response.text) == {"prompt_ids": message.format(**ids)}
    assert input_value(response.text, "prompt_ids") == form["prompt_ids"]
    assert snapshot(db) == before


def test_unknown_queue_and_project_are_404(client: TestClient, admin_csrf: str) -> None:
    for path in (
        "/queues/999999",
        "/queues/999999/progress",
        "/projects/999999/queues",
        # Beyond a 32-bit id: unknown too, not a database error.
        "/queues/2147483648",
        "/projects/2147483648/queues",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert error_message(response.text) in {
            "no queue with id 999999",
            "no project with id 999999",
            "no queue with id 2147483648",
            "no project with id 2147483648",
        }
    response = client.post("/queues/999999/pause", data={"csrf_token": admin_csrf})
    assert (response.status_code, error_message(response.text)) == (
        404,
        "no queue with id 999999",
    )


# --- who may do what ------------------------------------------------------------------------


def _write_requests(project: Project, queue: Queue) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"/projects/{project.id}/queues", {**SETTINGS, "name": "Hijack", "kind": "comparison"}),
        (f"/queues/{queue.id}/edit", {**SETTINGS, "name": "Hijack"}),
        (f"/queues/{queue.id}/pause", {}),
        (f"/queues/{queue.id}/resume", {}),
        (f"/queues/{queue.id}/labelers", {"labeler_ids": []}),
        (f"/queues/{queue.id}/tasks", {"all_untasked": "on"}),
    ]


def test_researcher_gets_403_on_every_queue_form(
    client: TestClient, db: Session, admin: User, researcher: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    make_prompt(db, project, 2)
    csrf = web_login(client, "rhea")
    before = snapshot(db)
    for path, form in _write_requests(project, queue):
        response = client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code == 403, path
        assert error_message(response.text) == "this needs the admin role"
    assert snapshot(db) == before


def test_labeler_gets_403_on_every_queue_page(
    client: TestClient, db: Session, admin: User, labeler: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    csrf = web_login(client, "lena")
    before = snapshot(db)
    for path in (
        f"/projects/{project.id}/queues",
        f"/queues/{queue.id}",
        f"/queues/{queue.id}/progress",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert error_message(response.text) == "this needs the admin or researcher role"
    for path, form in _write_requests(project, queue):
        response = client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code == 403, path
        assert error_message(response.text) == "this needs the admin role"
    assert snapshot(db) == before


def test_logged_out_progress_poll_is_told_to_log_in(
    client: TestClient, db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    response = client.get(f"/queues/{queue.id}/progress", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == f"/login?next=%2Fqueues%2F{queue.id}%2Fprogress"


def test_the_task_table_reads_each_prompt_and_its_labels_so_far(
    client: TestClient,
    db: Session,
    admin: User,
    three_judged: tuple[Task, list[int], list[User]],  # noqa: F811
) -> None:
    task, _, _ = three_judged
    prompt = db.get(Prompt, task.prompt_id)
    assert prompt is not None
    prompt.messages = [{"role": "user", "content": "  How long do I boil an egg?\n"}]
    db.flush()
    web_login(client, admin.username)

    page = client.get(f"/queues/{task.queue_id}").text

    assert text_of(page, "task-prompt") == "How long do I boil an egg?"
    assert f'href="/projects/{prompt.project_id}/prompts/{prompt.id}"' in page
    assert text_of(page, "task-labels") == "3 / 3"
