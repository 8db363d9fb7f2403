"""app.services.queues: queue settings, who may work, tasks, gold answers and progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    Assignment,
    AssignmentStatus,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.schemas.queues import QueueCreate, QueueUpdate, TaskItem, TasksAdd
from app.services import queues
from app.services import tasks as task_service
from tests.api.helpers import db_state
from tests.conftest import make_user

TABLES = ("queues", "queue_labelers", "tasks", "task_responses", "assignments")
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# --- factories --------------------------------------------------------------------------------


def make_project(db: Session, name: str = "Chat", *, archived: bool = False) -> Project:
    project = Project(name=name, label_schema={"flags": []}, is_archived=archived)
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


def response_ids(db: Session, prompt: Prompt) -> list[int]:
    query = select(Response.id).where(Response.prompt_id == prompt.id).order_by(Response.id)
    return list(db.scalars(query))


def make_queue(
    db: Session, project: Project, acting: User, kind: str = "comparison", **fields: Any
) -> Queue:
    data = QueueCreate(name=fields.pop("name", f"{kind} queue"), kind=kind, **fields)
    return queues.create_queue(db, project.id, data, acting)


def stored_tasks(db: Session, queue: Queue) -> list[tuple[int, int, bool, Any]]:
    db.expire_all()
    rows = db.scalars(select(Task).where(Task.queue_id == queue.id).order_by(Task.id))
    return [(task.prompt_id, task.overlap, task.is_gold, task.gold_answer) for task in rows]


def positions(db: Session, task: Task) -> list[tuple[int, int]]:
    rows = db.execute(
        select(TaskResponse.position, TaskResponse.response_id)
        .where(TaskResponse.task_id == task.id)
        .order_by(TaskResponse.position)
    )
    return [(position, response_id) for position, response_id in rows]


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


# --- creating and changing queues -------------------------------------------------------------


def test_create_queue_with_defaults(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin, name="  Rank chat  ")
    db.expire_all()
    stored = queues.get_queue(db, queue.id)
    assert (stored.project_id, stored.name, stored.kind) == (
        project.id,
        "Rank chat",
        QueueKind.comparison,
    )
    assert (stored.overlap, stored.max_overlap, stored.disagreement_tau) == (1, 1, None)
    assert (stored.priority, stored.lease_seconds, stored.max_active_leases) == (0, 1800, 3)
    assert (stored.open_to_all, stored.is_paused, stored.created_by_id) == (True, False, admin.id)
    assert queues.labeler_ids(db, queue.id) == []


def test_create_queue_with_every_setting_and_listed_labelers(
    db: Session, admin: User, project: Project
) -> None:
    ann, bob = make_user(db, "ann"), make_user(db, "bob")
    queue = make_queue(
        db,
        project,
        admin,
        kind="demonstration",
        name="Write",
        overlap=2,
        max_overlap=4,
        disagreement_tau=0.25,
        priority=-3,
        lease_seconds=600,
        max_active_leases=1,
        open_to_all=False,
        labeler_ids=[bob.id, ann.id, bob.id],
    )
    assert (queue.kind, queue.overlap, queue.max_overlap, queue.disagreement_tau) == (
        QueueKind.demonstration,
        2,
        4,
        0.25,
    )
    assert (queue.priority, queue.lease_seconds, queue.max_active_leases) == (-3, 600, 1)
    assert queue.open_to_all is False
    assert queues.labeler_ids(db, queue.id) == sorted([ann.id, bob.id])


def test_max_overlap_left_out_equals_overlap() -> None:
    assert QueueCreate(name="q", kind="comparison", overlap=3).max_overlap == 3


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"overlap": 0}, ("overlap", "Input should be greater than or equal to 1")),
        ({"lease_seconds": 0}, ("lease_seconds", "Input should be greater than 0")),
        (
            {"overlap": 3, "max_overlap": 2},
            ("max_overlap", "Value error, max_overlap must be at least overlap (3)"),
        ),
        (
            {"disagreement_tau": 1.5},
            ("disagreement_tau", "Input should be less than or equal to 1"),
        ),
        (
            {"disagreement_tau": -1.01},
            ("disagreement_tau", "Input should be greater than or equal to -1"),
        ),
        (
            {"max_active_leases": 0},
            ("max_active_leases", "Input should be greater than or equal to 1"),
        ),
        ({"name": "   "}, ("name", "Value error, a queue needs a name")),
        ({"kind": "ranking"}, ("kind", "Input should be 'demonstration' or 'comparison'")),
        ({"is_paused": True}, ("is_paused", "Extra inputs are not permitted")),
    ],
    ids=[
        "overlap-0",
        "lease-0",
        "max-below-overlap",
        "tau-above-1",
        "tau-below-minus-1",
        "no-active-leases",
        "blank-name",
        "unknown-kind",
        "extra",
    ],
)
def test_invalid_queue_settings_are_refused(
    fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        QueueCreate(**{"name": "q", "kind": "comparison", **fields})
    problem = caught.value.errors()[0]
    assert (str(problem["loc"][0]), problem["msg"]) == expected


def test_duplicate_queue_name_is_a_conflict_in_one_project_only(
    db: Session, admin: User, project: Project
) -> None:
    first = make_queue(db, project, admin, name="Rank")
    before = db_state(db, TABLES)
    with pytest.raises(Conflict) as caught:
        make_queue(db, project, admin, kind="demonstration", name=" Rank ")
    assert (caught.value.message, caught.value.field) == (
        "a queue named 'Rank' exists in this project",
        "name",
    )
    assert db_state(db, TABLES) == before

    elsewhere = make_queue(db, make_project(db, "Other"), admin, name="Rank")
    assert elsewhere.id != first.id


def test_queue_in_an_unknown_project_is_404(db: Session, admin: User) -> None:
    before = db_state(db, TABLES)
    with pytest.raises(NotFound) as caught:
        queues.create_queue(db, 999_999, QueueCreate(name="q", kind="comparison"), admin)
    assert caught.value.message == "no project with id 999999"
    with pytest.raises(NotFound):
        queues.list_queues(db, 999_999)
    assert db_state(db, TABLES) == before


def test_list_queues_by_name_within_the_project(db: Session, admin: User, project: Project) -> None:
    zeta = make_queue(db, project, admin, name="Zeta")
    alpha = make_queue(db, project, admin, name="Alpha")
    make_queue(db, make_project(db, "Other"), admin, name="Beta")
    assert [q.id for q in queues.list_queues(db, project.id)] == [alpha.id, zeta.id]


def test_update_queue_changes_only_what_was_sent(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, name="Rank", disagreement_tau=0.1, priority=5)
    queues.update_queue(db, queue.id, QueueUpdate(name="Ranked", overlap=2, max_overlap=3))
    db.expire_all()
    stored = queues.get_queue(db, queue.id)
    assert (stored.name, stored.overlap, stored.max_overlap) == ("Ranked", 2, 3)
    assert (stored.disagreement_tau, stored.priority, stored.kind) == (
        0.1,
        5,
        QueueKind.comparison,
    )

    queues.update_queue(db, queue.id, QueueUpdate(disagreement_tau=None))
    assert queues.get_queue(db, queue.id).disagreement_tau is None


def test_update_keeps_max_overlap_at_least_overlap(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, overlap=2, max_overlap=3)
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        queues.update_queue(db, queue.id, QueueUpdate(overlap=4))
    assert (caught.value.message, caught.value.field) == (
        "max_overlap must be at least overlap (4)",
        "max_overlap",
    )
    with pytest.raises(InvalidInput) as caught:
        queues.update_queue(db, queue.id, QueueUpdate(max_overlap=1))
    assert caught.value.message == "max_overlap must be at least overlap (2)"
    assert db_state(db, TABLES) == before


def test_update_refuses_nulls_for_required_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        QueueUpdate(overlap=None)
    assert caught.value.errors()[0]["msg"] == "Value error, cannot be null"
    with pytest.raises(ValidationError):
        QueueUpdate(kind="demonstration")


def test_rename_to_a_taken_name_is_a_conflict(db: Session, admin: User, project: Project) -> None:
    make_queue(db, project, admin, name="Alpha")
    beta = make_queue(db, project, admin, name="Beta")
    before = db_state(db, TABLES)
    with pytest.raises(Conflict) as caught:
        queues.update_queue(db, beta.id, QueueUpdate(name="Alpha", priority=9))
    assert caught.value.message == "a queue named 'Alpha' exists in this project"
    assert db_state(db, TABLES) == before
    assert queues.get_queue(db, beta.id).priority == 0


def test_pause_and_resume(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin)
    assert queues.set_paused(db, queue.id, True).is_paused is True
    db.expire_all()
    assert queues.get_queue(db, queue.id).is_paused is True
    assert queues.set_paused(db, queue.id, False).is_paused is False


def test_unknown_queue_is_404(db: Session) -> None:
    for call in (
        lambda: queues.get_queue(db, 999_999),
        lambda: queues.update_queue(db, 999_999, QueueUpdate(priority=1)),
        lambda: queues.set_paused(db, 999_999, True),
        lambda: queues.set_labelers(db, 999_999, []),
        lambda: queues.queue_progress(db, 999_999),
        lambda: task_service.add_tasks(db, 999_999, TasksAdd(items=[TaskItem(prompt_id=1)])),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.message == "no queue with id 999999"


# --- who may work -----------------------------------------------------------------------------


def test_set_labelers_replaces_the_list(db: Session, admin: User, project: Project) -> None:
    ann, bob, cid = make_user(db, "ann"), make_user(db, "bob"), make_user(db, "cid")
    queue = make_queue(db, project, admin, labeler_ids=[ann.id, bob.id])

    queues.set_labelers(db, queue.id, [cid.id, bob.id, cid.id])
    assert queues.labeler_ids(db, queue.id) == sorted([bob.id, cid.id])

    queues.set_labelers(db, queue.id, [])
    assert queues.labeler_ids(db, queue.id) == []


def test_set_labelers_refuses_anyone_but_active_labelers(
    db: Session, admin: User, researcher: User, project: Project
) -> None:
    ann = make_user(db, "ann")
    gone = make_user(db, "gone", active=False)
    queue = make_queue(db, project, admin, labeler_ids=[ann.id])
    before = db_state(db, TABLES)

    with pytest.raises(InvalidInput) as caught:
        queues.set_labelers(db, queue.id, [researcher.id])
    assert (caught.value.message, caught.value.field) == (
        f"only active labelers can be listed: user {researcher.id} (rhea) has the researcher role",
        "labeler_ids",
    )
    with pytest.raises(InvalidInput) as caught:
        queues.set_labelers(db, queue.id, [999_999, ann.id, gone.id, admin.id])
    assert caught.value.message == (
        f"only active labelers can be listed: user {admin.id} (root-admin) has the admin role; "
        f"user {gone.id} (gone) is deactivated; no user with id 999999"
    )
    assert db_state(db, TABLES) == before
    with pytest.raises(InvalidInput):
        make_queue(db, project, admin, name="Other", labeler_ids=[researcher.id])
    assert db_state(db, TABLES) == before


def test_can_work_on(db: Session, admin: User, labeler: User, project: Project) -> None:
    other = make_user(db, "other")
    open_queue = make_queue(db, project, admin, name="Open")
    closed = make_queue(db, project, admin, name="Closed", open_to_all=False)
    queues.set_labelers(db, closed.id, [labeler.id])

    assert queues.can_work_on(db, open_queue, labeler) is True
    assert queues.can_work_on(db, open_queue, other) is True
    assert queues.can_work_on(db, closed, labeler) is True
    assert queues.can_work_on(db, closed, other) is False

    # Paused is the leasing code's concern, not a question of permission.
    queues.set_paused(db, open_queue.id, True)
    assert queues.can_work_on(db, open_queue, other) is True

    other.is_active = False
    db.commit()
    assert queues.can_work_on(db, open_queue, other) is False

    project.is_archived = True
    db.commit()
    assert queues.can_work_on(db, open_queue, labeler) is False
    assert queues.can_work_on(db, closed, labeler) is False


# --- tasks ------------------------------------------------------------------------------------


def test_demonstration_tasks_take_the_queues_overlap(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", overlap=2, max_overlap=3)
    first, second = make_prompt(db, project), make_prompt(db, project)

    tasks = task_service.add_tasks(
        db,
        queue.id,
        TasksAdd(items=[TaskItem(prompt_id=first.id), TaskItem(prompt_id=second.id, priority=7)]),
    )

    assert [(t.prompt_id, t.overlap, t.priority, t.is_gold) for t in tasks] == [
        (first.id, 2, 0, False),
        (second.id, 2, 7, False),
    ]
    assert task_service.response_ids_by_task(db, [t.id for t in tasks]) == {t.id: [] for t in tasks}
    assert task_service.count_tasks(db, queue.id) == 2


def test_comparison_task_keeps_the_given_order(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin, overlap=3, max_overlap=3)
    prompt = make_prompt(db, project, responses=3)
    a, b, c = response_ids(db, prompt)

    [task] = task_service.add_tasks(
        db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[c, a, b])])
    )

    assert positions(db, task) == [(0, c), (1, a), (2, b)]
    assert task_service.response_ids_by_task(db, [task.id]) == {task.id: [c, a, b]}
    assert task.overlap == 3


def test_comparison_task_with_nine_responses_is_fine(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, responses=9)
    [task] = task_service.add_tasks(
        db,
        queue.id,
        TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=response_ids(db, prompt))]),
    )
    assert [p for p, _ in positions(db, task)] == list(range(9))


def _bad_items(db: Session, project: Project) -> dict[str, Any]:
    prompt = make_prompt(db, project, responses=10)
    ids = response_ids(db, prompt)
    stranger = make_prompt(db, project, responses=2)
    foreign_project = make_project(db, "Foreign")
    foreign = make_prompt(db, foreign_project, responses=2)
    return {"prompt": prompt, "ids": ids, "stranger": stranger, "foreign": foreign}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("one-response", ("a comparison task needs at least 2 responses", "items.1.response_ids")),
        ("no-responses", ("a comparison task needs at least 2 responses", "items.1.response_ids")),
        ("ten-responses", ("a comparison task shows at most 9 responses", "items.1.response_ids")),
        (
            "repeated",
            ("a task shows each response once; repeated: {a}", "items.1.response_ids"),
        ),
        (
            "other-prompts-response",
            ("response {s} is not a response to prompt {p}", "items.1.response_ids"),
        ),
        ("unknown-response", ("no response with id 999999", "items.1.response_ids")),
        ("other-project", ("prompt {f} is not in this queue's project", "items.1.prompt_id")),
        ("unknown-prompt", ("no prompt with id 999999", "items.1.prompt_id")),
    ],
)
def test_bad_comparison_items_are_refused_and_nothing_is_added(
    db: Session, admin: User, project: Project, case: str, expected: tuple[str, str]
) -> None:
    queue = make_queue(db, project, admin)
    made = _bad_items(db, project)
    prompt, ids = made["prompt"], made["ids"]
    good = TaskItem(prompt_id=prompt.id, response_ids=ids[:2])
    stranger_response = response_ids(db, made["stranger"])[0]
    bad = {
        "one-response": TaskItem(prompt_id=prompt.id, response_ids=ids[:1]),
        "no-responses": TaskItem(prompt_id=prompt.id),
        "ten-responses": TaskItem(prompt_id=prompt.id, response_ids=ids),
        "repeated": TaskItem(prompt_id=prompt.id, response_ids=[ids[0], ids[1], ids[0]]),
        "other-prompts-response": TaskItem(
            prompt_id=prompt.id, response_ids=[ids[0], stranger_response]
        ),
        "unknown-response": TaskItem(prompt_id=prompt.id, response_ids=[ids[0], 999_999]),
        "other-project": TaskItem(
            prompt_id=made["foreign"].id, response_ids=response_ids(db, made["foreign"])
        ),
        "unknown-prompt": TaskItem(prompt_id=999_999, response_ids=ids[:2]),
    }[case]
    before = db_state(db, TABLES)

    with pytest.raises(InvalidInput) as caught:
        task_service.add_tasks(db, queue.id, TasksAdd(items=[good, bad]))

    message, field = expected
    filled = message.format(a=ids[0], s=stranger_response, p=prompt.id, f=made["foreign"].id)
    assert (caught.value.message, caught.value.field) == (filled, field)
    assert db_state(db, TABLES) == before


def test_demonstration_task_with_responses_is_refused(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    prompt = make_prompt(db, project, responses=2)
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        task_service.add_tasks(
            db,
            queue.id,
            TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=response_ids(db, prompt))]),
        )
    assert (caught.value.message, caught.value.field) == (
        "a demonstration task offers at most one draft response",
        "items.0.response_ids",
    )
    assert db_state(db, TABLES) == before


# --- gold -------------------------------------------------------------------------------------


def test_gold_task_added_with_its_answer(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, responses=3)
    a, b, c = response_ids(db, prompt)
    gold = {"ranking": [[b], [a, c]]}

    [task] = task_service.add_tasks(
        db,
        queue.id,
        TasksAdd(
            items=[
                TaskItem(
                    prompt_id=prompt.id, response_ids=[a, b, c], is_gold=True, gold_answer=gold
                )
            ]
        ),
    )

    assert stored_tasks(db, queue) == [(prompt.id, 1, True, gold)]
    assert task.id is not None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"is_gold": True}, ("a gold task needs its gold_answer", "items.0.gold_answer")),
        (
            {"gold_answer": {"ranking": [[1], [2]]}},
            ("a gold_answer needs is_gold", "items.0.is_gold"),
        ),
        (
            {"is_gold": True, "gold_answer": {"best": 1}},
            (
                'a gold answer is {"ranking": [[best response ids], [next ids], ...]}',
                "items.0.gold_answer",
            ),
        ),
    ],
    ids=["gold-without-answer", "answer-without-gold", "bad-shape"],
)
def test_bad_gold_items_are_refused(
    db: Session, admin: User, project: Project, fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, responses=2)
    before = db_state(db, TABLES)
    item = TaskItem(prompt_id=prompt.id, response_ids=response_ids(db, prompt), **fields)
    with pytest.raises(InvalidInput) as caught:
        task_service.add_tasks(db, queue.id, TasksAdd(items=[item]))
    assert (caught.value.message, caught.value.field) == expected
    assert db_state(db, TABLES) == before


def test_set_gold_on_a_comparison_task(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, responses=3)
    a, b, c = response_ids(db, prompt)
    [task] = task_service.add_tasks(
        db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[a, b, c])])
    )

    task_service.set_gold(db, task.id, {"ranking": [[c, a], [b]]})
    assert stored_tasks(db, queue) == [(prompt.id, 1, True, {"ranking": [[c, a], [b]]})]

    task_service.set_gold(db, task.id, None)
    assert stored_tasks(db, queue) == [(prompt.id, 1, False, None)]


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        (
            lambda a, b, c: [[a], [b]],
            "the ranking must cover exactly the task's responses; missing {c}",
        ),
        (
            lambda a, b, c: [[a], [b], [c, 999_999]],
            "the ranking must cover exactly the task's responses; not in the task: 999999",
        ),
        (
            lambda a, b, c: [[a], [b, 999_999]],
            "the ranking must cover exactly the task's responses; missing {c}; "
            "not in the task: 999999",
        ),
        (lambda a, b, c: [[a], [b], [a, c]], "each response is ranked once; repeated: {a}"),
        (lambda a, b, c: [[a], [], [b, c]], "a group of tied responses cannot be empty"),
        (
            lambda a, b, c: [[a, b, c]],
            "a ranking with every response tied says nothing; order them in at least 2 groups",
        ),
        (
            lambda a, b, c: [a, b, c],
            'a gold answer is {{"ranking": [[best response ids], [next ids], ...]}}',
        ),
    ],
    ids=["missing", "extra", "missing-and-extra", "repeated", "empty-group", "all-tied", "flat"],
)
def test_bad_gold_rankings_are_refused(
    db: Session, admin: User, project: Project, ranking: Any, expected: str
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, responses=3)
    a, b, c = response_ids(db, prompt)
    [task] = task_service.add_tasks(
        db, queue.id, TasksAdd(items=[TaskItem(prompt_id=prompt.id, response_ids=[a, b, c])])
    )
    before = db_state(db, TABLES)

    with pytest.raises(InvalidInput) as caught:
        task_service.set_gold(db, task.id, {"ranking": ranking(a, b, c)})

    assert (caught.value.message, caught.value.field) == (expected.format(a=a, c=c), "ranking")
    assert db_state(db, TABLES) == before


def test_gold_on_a_demonstration_task_is_refused(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    [task] = task_service.add_tasks_from_prompts(db, queue.id, [make_prompt(db, project).id])
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        task_service.set_gold(db, task.id, {"ranking": [[1], [2]]})
    assert caught.value.message == "gold answers are only supported for comparison tasks"
    with pytest.raises(InvalidInput) as caught:
        task_service.add_tasks(
            db,
            queue.id,
            TasksAdd(items=[TaskItem(prompt_id=task.prompt_id, is_gold=True)]),
        )
    assert (caught.value.message, caught.value.field) == (
        "gold answers are only supported for comparison tasks",
        "items.0.is_gold",
    )
    assert db_state(db, TABLES) == before


def test_gold_on_an_unknown_task_is_404(db: Session) -> None:
    with pytest.raises(NotFound) as caught:
        task_service.set_gold(db, 999_999, {"ranking": [[1], [2]]})
    assert caught.value.message == "no task with id 999999"


# --- tasks from prompts -----------------------------------------------------------------------


def test_add_tasks_from_prompts_makes_demonstration_tasks(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", overlap=2, max_overlap=2)
    first, second = make_prompt(db, project), make_prompt(db, project)
    tasks = task_service.add_tasks_from_prompts(db, queue.id, [second.id, first.id])
    assert [t.prompt_id for t in tasks] == [second.id, first.id]
    assert stored_tasks(db, queue) == [(second.id, 2, False, None), (first.id, 2, False, None)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty", "give at least one prompt id"),
        ("twice", "prompt {p} is listed twice"),
        ("foreign", "prompt {f} is not in this queue's project"),
        ("unknown", "no prompt with id 999999"),
        ("wrong-kind", "this is a comparison queue: its tasks need responses"),
    ],
)
def test_bad_prompt_lists_are_refused(
    db: Session, admin: User, project: Project, case: str, expected: str
) -> None:
    queue = make_queue(
        db, project, admin, kind="comparison" if case == "wrong-kind" else "demonstration"
    )
    prompt = make_prompt(db, project)
    foreign = make_prompt(db, make_project(db, "Foreign"))
    ids = {
        "empty": [],
        "twice": [prompt.id, prompt.id],
        "foreign": [prompt.id, foreign.id],
        "unknown": [999_999],
        "wrong-kind": [prompt.id],
    }[case]
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        task_service.add_tasks_from_prompts(db, queue.id, ids)
    assert (caught.value.message, caught.value.field) == (
        expected.format(p=prompt.id, f=foreign.id),
        "prompt_ids",
    )
    assert db_state(db, TABLES) == before


def test_comparison_tasks_for_prompts_take_all_responses_and_skip_the_short(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    two, none, three, one = (make_prompt(db, project, n) for n in (2, 0, 3, 1))

    added = task_service.add_comparison_tasks_for_prompts(
        db, queue.id, [two.id, none.id, three.id, one.id]
    )

    assert [t.prompt_id for t in added.tasks] == [two.id, three.id]
    assert added.skipped_prompt_ids == [none.id, one.id]
    assert task_service.response_ids_by_task(db, [t.id for t in added.tasks]) == {
        added.tasks[0].id: response_ids(db, two),
        added.tasks[1].id: response_ids(db, three),
    }


def test_comparison_tasks_for_a_prompt_with_ten_responses_are_refused(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    demonstrations = make_queue(db, project, admin, kind="demonstration")
    fine, many = make_prompt(db, project, 2), make_prompt(db, project, 10)
    before = db_state(db, TABLES)
    with pytest.raises(InvalidInput) as caught:
        task_service.add_comparison_tasks_for_prompts(db, queue.id, [fine.id, many.id])
    assert caught.value.message == (
        f"prompt {many.id} has 10 responses; a comparison task shows at most 9: "
        "add its tasks one by one"
    )
    with pytest.raises(InvalidInput) as caught:
        task_service.add_comparison_tasks_for_prompts(db, demonstrations.id, [fine.id])
    assert caught.value.message == "this is a demonstration queue: its tasks have no responses"
    assert db_state(db, TABLES) == before


def test_untasked_prompts_are_per_queue(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", name="Write")
    other = make_queue(db, project, admin, kind="demonstration", name="Write again")
    first, second, third = (make_prompt(db, project) for _ in range(3))
    make_prompt(db, make_project(db, "Foreign"))
    task_service.add_tasks_from_prompts(db, queue.id, [second.id])
    task_service.add_tasks_from_prompts(db, other.id, [first.id])

    assert task_service.untasked_prompt_ids(db, queue.id) == [first.id, third.id]
    assert task_service.count_untasked_prompts(db, queue.id) == 2
    added = task_service.add_tasks_for_untasked_prompts(db, queue.id)
    assert [t.prompt_id for t in added.tasks] == [first.id, third.id]
    assert task_service.untasked_prompt_ids(db, queue.id) == []
    assert task_service.count_untasked_prompts(db, queue.id) == 0
    assert task_service.add_tasks_for_untasked_prompts(db, queue.id).tasks == []


def test_list_tasks_pages_in_creation_order(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    tasks = task_service.add_tasks_from_prompts(
        db, queue.id, [make_prompt(db, project).id for _ in range(3)]
    )
    assert [t.id for t in task_service.list_tasks(db, queue.id, 2, 0)] == [tasks[0].id, tasks[1].id]
    assert [t.id for t in task_service.list_tasks(db, queue.id, 2, 2)] == [tasks[2].id]


# --- progress ---------------------------------------------------------------------------------


def assign(
    db: Session,
    task: Task,
    labeler: User,
    status: AssignmentStatus,
    *,
    leased_ago: timedelta = timedelta(hours=3),
    expires_in: timedelta = timedelta(minutes=30),
    finished_ago: timedelta | None = None,
) -> None:
    db.add(
        Assignment(
            task_id=task.id,
            labeler_id=labeler.id,
            status=status,
            leased_at=NOW - leased_ago,
            lease_expires_at=NOW + expires_in,
            finished_at=None if finished_ago is None else NOW - finished_ago,
        )
    )
    db.commit()


def test_progress_of_an_empty_queue(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin)
    progress = queues.queue_progress(db, queue.id, now=NOW)
    assert progress.model_dump() == {
        "tasks": 0,
        "required": 0,
        "done": 0,
        "in_progress": 0,
        "left": 0,
        "per_hour": 0,
        "eta_seconds": None,
    }


def test_progress_counts_done_in_progress_left_pace_and_eta(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", overlap=3, max_overlap=4)
    other_queue = make_queue(db, project, admin, kind="demonstration", name="Other")
    tasks = task_service.add_tasks_from_prompts(
        db, queue.id, [make_prompt(db, project).id for _ in "abcd"]
    )
    # One task asked for a fourth labeler after a disagreement: 3 + 3 + 3 + 4 = 13 labels.
    tasks[3].overlap = 4
    db.commit()
    [elsewhere] = task_service.add_tasks_from_prompts(
        db, other_queue.id, [make_prompt(db, project).id]
    )
    people = [make_user(db, f"labeler-{i}", Role.labeler) for i in range(4)]
    hour = timedelta(hours=1)
    minutes = timedelta(minutes=1)

    # Submitted within the last hour: 3; earlier: 2.
    assign(db, tasks[0], people[0], AssignmentStatus.submitted, finished_ago=5 * minutes)
    assign(db, tasks[0], people[1], AssignmentStatus.submitted, finished_ago=59 * minutes)
    assign(db, tasks[1], people[0], AssignmentStatus.submitted, finished_ago=30 * minutes)
    assign(db, tasks[1], people[1], AssignmentStatus.submitted, finished_ago=hour)
    assign(db, tasks[2], people[0], AssignmentStatus.submitted, finished_ago=2 * hour)
    # In progress: two live leases; one active lease already expired does not count.
    assign(db, tasks[2], people[1], AssignmentStatus.active)
    assign(db, tasks[3], people[0], AssignmentStatus.active, expires_in=timedelta(seconds=1))
    assign(db, tasks[3], people[1], AssignmentStatus.active, expires_in=-minutes)
    # Neither done nor in progress.
    assign(db, tasks[3], people[2], AssignmentStatus.skipped, finished_ago=minutes)
    assign(db, tasks[3], people[3], AssignmentStatus.expired)
    # Another queue's work is not this queue's.
    assign(db, elsewhere, people[0], AssignmentStatus.submitted, finished_ago=minutes)

    progress = queues.queue_progress(db, queue.id, now=NOW)

    # left = 13 - 5 - 2 = 6; at 3 an hour that is 2 hours.
    assert progress.model_dump() == {
        "tasks": 4,
        "required": 13,
        "done": 5,
        "in_progress": 2,
        "left": 6,
        "per_hour": 3,
        "eta_seconds": 7200,
    }


def test_eta_is_none_without_recent_submissions_and_left_never_negative(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin, kind="demonstration")
    [task] = task_service.add_tasks_from_prompts(db, queue.id, [make_prompt(db, project).id])
    people = [make_user(db, f"labeler-{i}") for i in range(3)]

    assign(db, task, people[0], AssignmentStatus.submitted, finished_ago=timedelta(hours=2))
    progress = queues.queue_progress(db, queue.id, now=NOW)
    assert (progress.done, progress.left, progress.per_hour, progress.eta_seconds) == (
        1,
        0,
        0,
        None,
    )

    # More labels than asked for (e.g. overlap lowered later): left stays at 0.
    assign(db, task, people[1], AssignmentStatus.submitted, finished_ago=timedelta(minutes=1))
    assign(db, task, people[2], AssignmentStatus.active)
    progress = queues.queue_progress(db, queue.id, now=NOW)
    assert (progress.required, progress.done, progress.in_progress, progress.left) == (1, 2, 1, 0)
    assert (progress.per_hour, progress.eta_seconds) == (1, 0)


def test_eta_rounds_to_whole_seconds(db: Session, admin: User, project: Project) -> None:
    queue = make_queue(db, project, admin, kind="demonstration", overlap=3, max_overlap=3)
    [task] = task_service.add_tasks_from_prompts(db, queue.id, [make_prompt(db, project).id])
    people = [make_user(db, f"labeler-{i}") for i in range(3)]
    assign(db, task, people[0], AssignmentStatus.submitted, finished_ago=timedelta(minutes=1))
    assign(db, task, people[1], AssignmentStatus.submitted, finished_ago=timedelta(minutes=2))

    progress = queues.queue_progress(db, queue.id, now=NOW)

    # 1 left at 2 an hour: half an hour.
    assert (progress.left, progress.per_hour, progress.eta_seconds) == (1, 2, 1800)
