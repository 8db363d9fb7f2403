"""/api/v1 queues, tasks, gold answers and progress: admins manage, researchers read."""

from __future__ import annotations

from datetime import timedelta

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
from tests.api.helpers import API, Json, db_state, error, iso, reload, validation_error
from tests.conftest import bearer, make_token, make_user

TABLES = ("queues", "queue_labelers", "tasks", "task_responses", "assignments")
NEEDS_ADMIN = error("permission_denied", "this needs the admin role")
NEEDS_STAFF = error("permission_denied", "this needs the admin or researcher role")


def invalid(message: str, field: str, kind: str) -> Json:
    """The 422 body for one invalid body field, with pydantic's error type."""
    body = validation_error("Field required", field)
    body["error"]["message"] = f"body.{field}: {message}"
    body["error"]["problems"] = [{"location": f"body.{field}", "message": message, "type": kind}]
    return body


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def project(db: Session) -> Project:
    project = Project(name="Chat", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


@pytest.fixture
def as_admin(db: Session, admin: User) -> dict[str, str]:
    return bearer(make_token(db, admin))


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def make_prompt(db: Session, project: Project, responses: int = 0) -> tuple[int, list[int]]:
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Hi"}],
        source="test",
        content_hash="0" * 64,
    )
    db.add(prompt)
    db.flush()
    made = [
        Response(prompt_id=prompt.id, content=f"answer {i}", source=ResponseSource.imported)
        for i in range(responses)
    ]
    db.add_all(made)
    db.commit()
    return prompt.id, [response.id for response in made]


def queue_json(queue: Queue, labeler_ids: list[int] | None = None) -> Json:
    return {
        "id": queue.id,
        "project_id": queue.project_id,
        "name": queue.name,
        "kind": queue.kind.value,
        "overlap": queue.overlap,
        "max_overlap": queue.max_overlap,
        "disagreement_tau": queue.disagreement_tau,
        "priority": queue.priority,
        "lease_seconds": queue.lease_seconds,
        "max_active_leases": queue.max_active_leases,
        "open_to_all": queue.open_to_all,
        "is_paused": queue.is_paused,
        "labeler_ids": labeler_ids or [],
        "created_by_id": queue.created_by_id,
        "created_at": iso(queue.created_at),
    }


def stored_queue(db: Session, queue_id: int) -> Queue:
    queue = db.get(Queue, queue_id)
    assert queue is not None
    return reload(db, queue)


def create_queue(
    client: TestClient, headers: dict[str, str], project: Project, **body: object
) -> Json:
    body = {"name": "Rank", "kind": "comparison", **body}
    response = client.post(f"{API}/projects/{project.id}/queues", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- queues -----------------------------------------------------------------------------------


def test_admin_creates_a_queue(
    client: TestClient, db: Session, admin: User, project: Project, as_admin: dict[str, str]
) -> None:
    ann = make_user(db, "ann")
    response = client.post(
        f"{API}/projects/{project.id}/queues",
        headers=as_admin,
        json={
            "name": " Rank chat ",
            "kind": "comparison",
            "overlap": 2,
            "max_overlap": 3,
            "disagreement_tau": 0.3,
            "priority": 4,
            "lease_seconds": 900,
            "max_active_leases": 2,
            "open_to_all": False,
            "labeler_ids": [ann.id],
        },
    )

    assert response.status_code == 201
    queue = stored_queue(db, response.json()["id"])
    assert response.json() == queue_json(queue, [ann.id])
    assert response.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "project_id": project.id,
        "name": "Rank chat",
        "kind": "comparison",
        "overlap": 2,
        "max_overlap": 3,
        "disagreement_tau": 0.3,
        "priority": 4,
        "lease_seconds": 900,
        "max_active_leases": 2,
        "open_to_all": False,
        "is_paused": False,
        "labeler_ids": [ann.id],
        "created_by_id": admin.id,
        "created_at": "",
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"overlap": 0},
            invalid("Input should be greater than or equal to 1", "overlap", "greater_than_equal"),
        ),
        (
            {"lease_seconds": 0},
            invalid("Input should be greater than 0", "lease_seconds", "greater_than"),
        ),
        (
            {"overlap": 3, "max_overlap": 2},
            validation_error(
                "Value error, max_overlap must be at least overlap (3)", "max_overlap"
            ),
        ),
        (
            {"disagreement_tau": 2},
            invalid(
                "Input should be less than or equal to 1", "disagreement_tau", "less_than_equal"
            ),
        ),
        (
            {"kind": None},
            invalid("Input should be 'demonstration' or 'comparison'", "kind", "enum"),
        ),
        ({"is_paused": True}, validation_error("Extra inputs are not permitted", "is_paused")),
    ],
    ids=["overlap-0", "lease-0", "max-below-overlap", "tau-2", "no-kind", "extra"],
)
def test_invalid_queue_is_422_and_adds_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    expected: Json,
) -> None:
    before = db_state(db, TABLES)
    response = client.post(
        f"{API}/projects/{project.id}/queues",
        headers=as_admin,
        json={"name": "Rank", "kind": "comparison", **body},
    )
    assert (response.status_code, response.json()) == (422, expected)
    assert db_state(db, TABLES) == before


def test_duplicate_queue_name_is_409(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    create_queue(client, as_admin, project, name="Rank")
    before = db_state(db, TABLES)
    response = client.post(
        f"{API}/projects/{project.id}/queues",
        headers=as_admin,
        json={"name": "Rank", "kind": "demonstration"},
    )
    assert response.status_code == 409
    assert response.json() == error(
        "conflict", "a queue named 'Rank' exists in this project", "name"
    )
    assert db_state(db, TABLES) == before


def test_listing_with_a_researcher_in_the_labelers_is_422(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    researcher: User,
) -> None:
    before = db_state(db, TABLES)
    response = client.post(
        f"{API}/projects/{project.id}/queues",
        headers=as_admin,
        json={"name": "Rank", "kind": "comparison", "labeler_ids": [researcher.id]},
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        f"only active labelers can be listed: user {researcher.id} (rhea) has the researcher role",
        "labeler_ids",
    )
    assert db_state(db, TABLES) == before


def test_researchers_read_queues(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    as_researcher: dict[str, str],
) -> None:
    second = create_queue(client, as_admin, project, name="Zeta", kind="demonstration")
    first = create_queue(client, as_admin, project, name="Alpha")

    listed = client.get(f"{API}/projects/{project.id}/queues", headers=as_researcher)
    one = client.get(f"{API}/queues/{second['id']}", headers=as_researcher)

    assert (listed.status_code, listed.json()) == (200, [first, second])
    assert (one.status_code, one.json()) == (200, second)


def test_patch_changes_only_what_was_sent(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    created = create_queue(client, as_admin, project, disagreement_tau=0.5)

    response = client.patch(
        f"{API}/queues/{created['id']}",
        headers=as_admin,
        json={"name": "Ranked", "overlap": 2, "max_overlap": 2, "disagreement_tau": None},
    )

    assert response.status_code == 200
    assert response.json() == {
        **created,
        "name": "Ranked",
        "overlap": 2,
        "max_overlap": 2,
        "disagreement_tau": None,
    }
    assert response.json() == queue_json(stored_queue(db, created["id"]))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"overlap": 0},
            invalid("Input should be greater than or equal to 1", "overlap", "greater_than_equal"),
        ),
        (
            {"lease_seconds": 0},
            invalid("Input should be greater than 0", "lease_seconds", "greater_than"),
        ),
        (
            {"overlap": 2},
            error("invalid_input", "max_overlap must be at least overlap (2)", "max_overlap"),
        ),
        ({"overlap": None}, validation_error("Value error, cannot be null", "overlap")),
        ({"kind": "demonstration"}, validation_error("Extra inputs are not permitted", "kind")),
        (
            {"name": "Taken"},
            error("conflict", "a queue named 'Taken' exists in this project", "name"),
        ),
    ],
    ids=["overlap-0", "lease-0", "overlap-above-max", "null", "kind", "taken-name"],
)
def test_invalid_patch_is_refused_and_changes_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    body: Json,
    expected: Json,
) -> None:
    create_queue(client, as_admin, project, name="Taken")
    created = create_queue(client, as_admin, project, name="Mine")
    before = db_state(db, TABLES)

    response = client.patch(f"{API}/queues/{created['id']}", headers=as_admin, json=body)

    status = 409 if expected["error"]["code"] == "conflict" else 422
    assert (response.status_code, response.json()) == (status, expected)
    assert db_state(db, TABLES) == before


def test_pause_and_resume(client: TestClient, project: Project, as_admin: dict[str, str]) -> None:
    created = create_queue(client, as_admin, project)
    paused = client.post(f"{API}/queues/{created['id']}/pause", headers=as_admin)
    assert (paused.status_code, paused.json()) == (200, {**created, "is_paused": True})
    resumed = client.post(f"{API}/queues/{created['id']}/resume", headers=as_admin)
    assert (resumed.status_code, resumed.json()) == (200, created)


def test_put_labelers_replaces_them(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    created = create_queue(client, as_admin, project, labeler_ids=[ann.id])

    response = client.put(
        f"{API}/queues/{created['id']}/labelers",
        headers=as_admin,
        json={"labeler_ids": [bob.id, ann.id, bob.id]},
    )

    assert response.status_code == 200
    assert response.json() == {**created, "labeler_ids": sorted([ann.id, bob.id])}


def test_put_labelers_with_a_researcher_or_unknown_id_is_422(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    researcher: User,
) -> None:
    ann = make_user(db, "ann")
    created = create_queue(client, as_admin, project, labeler_ids=[ann.id])
    before = db_state(db, TABLES)

    with_researcher = client.put(
        f"{API}/queues/{created['id']}/labelers",
        headers=as_admin,
        json={"labeler_ids": [researcher.id]},
    )
    with_unknown = client.put(
        f"{API}/queues/{created['id']}/labelers",
        headers=as_admin,
        json={"labeler_ids": [ann.id, 999999]},
    )

    assert (with_researcher.status_code, with_researcher.json()) == (
        422,
        error(
            "invalid_input",
            f"only active labelers can be listed: user {researcher.id} (rhea) has the "
            "researcher role",
            "labeler_ids",
        ),
    )
    assert (with_unknown.status_code, with_unknown.json()) == (
        422,
        error(
            "invalid_input",
            "only active labelers can be listed: no user with id 999999",
            "labeler_ids",
        ),
    )
    assert db_state(db, TABLES) == before


def test_unknown_ids_are_404(client: TestClient, db: Session, as_admin: dict[str, str]) -> None:
    before = db_state(db, TABLES)
    no_queue = error("not_found", "no queue with id 999999")
    answers = [
        client.get(f"{API}/queues/999999", headers=as_admin),
        client.patch(f"{API}/queues/999999", headers=as_admin, json={"priority": 1}),
        client.post(f"{API}/queues/999999/pause", headers=as_admin),
        client.post(f"{API}/queues/999999/resume", headers=as_admin),
        client.put(f"{API}/queues/999999/labelers", headers=as_admin, json={"labeler_ids": []}),
        client.post(
            f"{API}/queues/999999/tasks", headers=as_admin, json={"items": [{"prompt_id": 1}]}
        ),
        client.get(f"{API}/queues/999999/tasks", headers=as_admin),
        client.get(f"{API}/queues/999999/progress", headers=as_admin),
    ]
    assert [(a.status_code, a.json()) for a in answers] == [(404, no_queue)] * 8

    project_answers = [
        client.get(f"{API}/projects/999999/queues", headers=as_admin),
        client.post(
            f"{API}/projects/999999/queues",
            headers=as_admin,
            json={"name": "q", "kind": "comparison"},
        ),
    ]
    assert [(a.status_code, a.json()) for a in project_answers] == [
        (404, error("not_found", "no project with id 999999"))
    ] * 2

    gold = client.put(f"{API}/tasks/999999/gold", headers=as_admin, json={"ranking": [[1], [2]]})
    assert (gold.status_code, gold.json()) == (404, error("not_found", "no task with id 999999"))
    assert db_state(db, TABLES) == before


# --- tasks ------------------------------------------------------------------------------------


def test_add_comparison_tasks_and_read_them_back(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    as_researcher: dict[str, str],
) -> None:
    queue = create_queue(client, as_admin, project, overlap=2, max_overlap=3)
    first, (a, b, c) = make_prompt(db, project, responses=3)
    second, (d, e) = make_prompt(db, project, responses=2)

    response = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={
            "items": [
                {"prompt_id": first, "response_ids": [c, a, b], "priority": 5},
                {
                    "prompt_id": second,
                    "response_ids": [d, e],
                    "is_gold": True,
                    "gold_answer": {"ranking": [[e], [d]]},
                },
            ]
        },
    )

    assert response.status_code == 201
    tasks = list(db.scalars(select(Task).order_by(Task.id)))
    assert response.json() == [
        {
            "id": tasks[0].id,
            "queue_id": queue["id"],
            "prompt_id": first,
            "response_ids": [c, a, b],
            "priority": 5,
            "overlap": 2,
            "is_gold": False,
            "gold_answer": None,
            "retired_at": None,
            "created_at": iso(tasks[0].created_at),
        },
        {
            "id": tasks[1].id,
            "queue_id": queue["id"],
            "prompt_id": second,
            "response_ids": [d, e],
            "priority": 0,
            "overlap": 2,
            "is_gold": True,
            "gold_answer": {"ranking": [[e], [d]]},
            "retired_at": None,
            "created_at": iso(tasks[1].created_at),
        },
    ]

    page = client.get(f"{API}/queues/{queue['id']}/tasks?limit=1&offset=1", headers=as_researcher)
    assert page.status_code == 200
    assert page.json() == {"items": response.json()[1:], "total": 2, "limit": 1, "offset": 1}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("one-response", ("a comparison task needs at least 2 responses", "items.0.response_ids")),
        (
            "other-prompts-response",
            ("response {x} is not a response to prompt {p}", "items.0.response_ids"),
        ),
        ("other-project", ("prompt {f} is not in this queue's project", "items.0.prompt_id")),
        ("unknown-prompt", ("no prompt with id 999999", "items.0.prompt_id")),
    ],
)
def test_bad_comparison_tasks_are_422_and_add_nothing(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    case: str,
    expected: tuple[str, str],
) -> None:
    queue = create_queue(client, as_admin, project)
    prompt, (a, _) = make_prompt(db, project, responses=2)
    _, (stranger, _) = make_prompt(db, project, responses=2)
    other = Project(name="Other", label_schema={"flags": []})
    db.add(other)
    db.commit()
    foreign, foreign_responses = make_prompt(db, other, responses=2)
    item = {
        "one-response": {"prompt_id": prompt, "response_ids": [a]},
        "other-prompts-response": {"prompt_id": prompt, "response_ids": [a, stranger]},
        "other-project": {"prompt_id": foreign, "response_ids": foreign_responses},
        "unknown-prompt": {"prompt_id": 999999, "response_ids": [a, stranger]},
    }[case]
    before = db_state(db, TABLES)

    response = client.post(
        f"{API}/queues/{queue['id']}/tasks", headers=as_admin, json={"items": [item]}
    )

    message, field = expected
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input", message.format(x=stranger, p=prompt, f=foreign), field
    )
    assert db_state(db, TABLES) == before


def test_demonstration_task_with_responses_is_422(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    queue = create_queue(client, as_admin, project, kind="demonstration")
    fine, _ = make_prompt(db, project)
    prompt, responses = make_prompt(db, project, responses=2)
    before = db_state(db, TABLES)

    response = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={"items": [{"prompt_id": fine}, {"prompt_id": prompt, "response_ids": responses}]},
    )

    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        "a demonstration task offers at most one draft response",
        "items.1.response_ids",
    )
    assert db_state(db, TABLES) == before


def test_the_same_task_again_is_409_naming_the_prompt_and_adds_nothing(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    queue = create_queue(client, as_admin, project)
    prompt, responses = make_prompt(db, project, responses=2)
    url = f"{API}/queues/{queue['id']}/tasks"
    [task] = client.post(
        url, headers=as_admin, json={"items": [{"prompt_id": prompt, "response_ids": responses}]}
    ).json()
    before = db_state(db, TABLES)

    response = client.post(
        url,
        headers=as_admin,
        json={"items": [{"prompt_id": prompt, "response_ids": responses[::-1]}]},
    )

    assert response.status_code == 409
    assert response.json() == error(
        "conflict",
        f"{queue['name']} already has a task with the same responses for prompt {prompt} "
        f"(task {task['id']}): nothing was added (a new task for a prompt needs a different "
        "set of responses)",
        "items",
    )
    assert db_state(db, TABLES) == before


def test_empty_task_list_is_422(
    client: TestClient, project: Project, as_admin: dict[str, str]
) -> None:
    queue = create_queue(client, as_admin, project)
    response = client.post(
        f"{API}/queues/{queue['id']}/tasks", headers=as_admin, json={"items": []}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "items"


# --- gold -------------------------------------------------------------------------------------


def test_put_gold(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    queue = create_queue(client, as_admin, project)
    prompt, (a, b, c) = make_prompt(db, project, responses=3)
    [task] = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={"items": [{"prompt_id": prompt, "response_ids": [a, b, c]}]},
    ).json()

    response = client.put(
        f"{API}/tasks/{task['id']}/gold", headers=as_admin, json={"ranking": [[b], [a, c]]}
    )

    assert response.status_code == 200
    assert response.json() == {**task, "is_gold": True, "gold_answer": {"ranking": [[b], [a, c]]}}

    before = db_state(db, TABLES)
    partial = client.put(
        f"{API}/tasks/{task['id']}/gold", headers=as_admin, json={"ranking": [[b], [a]]}
    )
    assert (partial.status_code, partial.json()) == (
        422,
        error(
            "invalid_input",
            f"the ranking must cover exactly the task's responses; missing {c}",
            "ranking",
        ),
    )
    assert db_state(db, TABLES) == before


def test_gold_on_a_demonstration_task_is_422(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    queue = create_queue(client, as_admin, project, kind="demonstration")
    prompt, _ = make_prompt(db, project)
    [task] = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={"items": [{"prompt_id": prompt}]},
    ).json()
    before = db_state(db, TABLES)

    response = client.put(
        f"{API}/tasks/{task['id']}/gold", headers=as_admin, json={"ranking": [[1], [2]]}
    )

    assert (response.status_code, response.json()) == (
        422,
        error("invalid_input", "gold answers are only supported for comparison tasks", "ranking"),
    )
    assert db_state(db, TABLES) == before


# --- progress ---------------------------------------------------------------------------------


def test_progress(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    as_researcher: dict[str, str],
) -> None:
    queue = create_queue(client, as_admin, project, kind="demonstration", overlap=2, max_overlap=2)
    prompts = [make_prompt(db, project)[0] for _ in range(3)]
    tasks = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={"items": [{"prompt_id": prompt} for prompt in prompts]},
    ).json()
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    now = utcnow()
    for task_id, labeler, status in (
        (tasks[0]["id"], ann, AssignmentStatus.submitted),
        (tasks[0]["id"], bob, AssignmentStatus.submitted),
        (tasks[1]["id"], ann, AssignmentStatus.active),
    ):
        db.add(
            Assignment(
                task_id=task_id,
                labeler_id=labeler.id,
                status=status,
                leased_at=now - timedelta(minutes=20),
                lease_expires_at=now + timedelta(minutes=10),
                finished_at=now - timedelta(minutes=5) if status == "submitted" else None,
            )
        )
    db.commit()

    response = client.get(f"{API}/queues/{queue['id']}/progress", headers=as_researcher)

    # 6 labels asked for, 2 done, 1 in progress: 3 left at 2 an hour is 1.5 hours.
    assert response.status_code == 200
    assert response.json() == {
        "tasks": 3,
        "required": 6,
        "done": 2,
        "in_progress": 1,
        "left": 3,
        "per_hour": 2,
        "eta_seconds": 5400,
    }


# --- who may ----------------------------------------------------------------------------------


def test_who_may_call_each_queue_route(
    client: TestClient,
    db: Session,
    project: Project,
    as_admin: dict[str, str],
    as_researcher: dict[str, str],
    labeler: User,
) -> None:
    queue = create_queue(client, as_admin, project)
    prompt, responses = make_prompt(db, project, responses=2)
    [task] = client.post(
        f"{API}/queues/{queue['id']}/tasks",
        headers=as_admin,
        json={"items": [{"prompt_id": prompt, "response_ids": responses}]},
    ).json()
    other, other_responses = make_prompt(db, project, responses=2)
    as_labeler = bearer(make_token(db, labeler))
    q = f"{API}/queues/{queue['id']}"
    reads = [
        ("GET", f"{API}/projects/{project.id}/queues", None),
        ("GET", q, None),
        ("GET", f"{q}/tasks", None),
        ("GET", f"{q}/progress", None),
    ]
    writes = [
        ("POST", f"{API}/projects/{project.id}/queues", {"name": "New", "kind": "comparison"}),
        ("PATCH", q, {"priority": 9}),
        ("POST", f"{q}/pause", None),
        ("POST", f"{q}/resume", None),
        ("PUT", f"{q}/labelers", {"labeler_ids": [labeler.id]}),
        ("POST", f"{q}/tasks", {"items": [{"prompt_id": other, "response_ids": other_responses}]}),
        ("PUT", f"{API}/tasks/{task['id']}/gold", {"ranking": [[responses[0]], [responses[1]]]}),
    ]
    before = db_state(db, TABLES)

    def answers(headers: dict[str, str], calls: list) -> list[tuple[int, Json]]:
        found = []
        for method, path, body in calls:
            response = client.request(method, path, headers=headers, json=body)
            found.append((response.status_code, response.json()))
        return found

    assert (
        answers(as_labeler, reads + writes) == [(403, NEEDS_STAFF)] * 4 + [(403, NEEDS_ADMIN)] * 7
    )
    assert answers(as_researcher, writes) == [(403, NEEDS_ADMIN)] * 7
    assert [status for status, _ in answers(as_researcher, reads)] == [200] * 4
    assert db_state(db, TABLES) == before
    assert [status for status, _ in answers(as_admin, writes)] == [
        201,
        200,
        200,
        200,
        200,
        201,
        200,
    ]


def test_ids_too_large_for_the_database_are_unknown(
    client: TestClient, db: Session, project: Project, as_admin: dict[str, str]
) -> None:
    """PostgreSQL refuses to compare a 32-bit id column with them; they must not be a 500."""
    big = 2**31
    queue = create_queue(client, as_admin, project)
    prompt, responses = make_prompt(db, project, responses=2)
    before = db_state(db, TABLES)

    answers = {
        "queue": client.get(f"{API}/queues/{big}", headers=as_admin),
        "project": client.get(f"{API}/projects/{big}/queues", headers=as_admin),
        "task": client.put(f"{API}/tasks/{big}/gold", headers=as_admin, json={"ranking": []}),
        "prompt": client.post(
            f"{API}/queues/{queue['id']}/tasks",
            headers=as_admin,
            json={"items": [{"prompt_id": big, "response_ids": responses}]},
        ),
        "response": client.post(
            f"{API}/queues/{queue['id']}/tasks",
            headers=as_admin,
            json={"items": [{"prompt_id": prompt, "response_ids": [responses[0], big]}]},
        ),
        "labeler": client.put(
            f"{API}/queues/{queue['id']}/labelers", headers=as_admin, json={"labeler_ids": [big]}
        ),
    }

    assert {name: (a.status_code, a.json()) for name, a in answers.items()} == {
        "queue": (404, error("not_found", f"no queue with id {big}")),
        "project": (404, error("not_found", f"no project with id {big}")),
        "task": (404, error("not_found", f"no task with id {big}")),
        "prompt": (
            422,
            error("invalid_input", f"no prompt with id {big}", "items.0.prompt_id"),
        ),
        "response": (
            422,
            error("invalid_input", f"no response with id {big}", "items.0.response_ids"),
        ),
        "labeler": (
            422,
            error(
                "invalid_input",
                f"only active labelers can be listed: no user with id {big}",
                "labeler_ids",
            ),
        ),
    }
    assert db_state(db, TABLES) == before
