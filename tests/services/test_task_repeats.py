"""A queue never gets the same task twice (issue 16): the same prompt with the same set of
responses as a live task of the queue is refused with a 409 naming the prompts, and nothing is
added; the same prompt with another set of responses, or after its task was retired, is a new
task. A batch that merges what is already there skips and counts such prompts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import make_engine, session_factory
from app.errors import Conflict
from app.models import Project, Response, ResponseSource, Role, Task, User
from app.schemas.queues import TaskItem, TasksAdd
from app.services import tasks as task_service
from tests.api.helpers import db_state
from tests.conftest import make_user
from tests.services.test_queues_service import (
    TABLES,
    make_project,
    make_prompt,
    make_queue,
    response_ids,
)

ADVICE = ": nothing was added (a new task for a prompt needs a different set of responses)"


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


def items(*specs: tuple[int, list[int]]) -> TasksAdd:
    return TasksAdd(items=[TaskItem(prompt_id=p, response_ids=r) for p, r in specs])


def test_the_same_prompt_and_responses_in_any_order_are_refused_and_nothing_is_added(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    prompt, other = make_prompt(db, project, 3), make_prompt(db, project, 2)
    a, b, c = response_ids(db, prompt)
    (task,) = task_service.add_tasks(db, queue.id, items((prompt.id, [a, b, c])))
    before = db_state(db, TABLES)

    with pytest.raises(Conflict) as caught:
        task_service.add_tasks(
            db, queue.id, items((other.id, response_ids(db, other)), (prompt.id, [c, a, b]))
        )

    assert (caught.value.message, caught.value.field) == (
        f"comparison queue already has a task with the same responses for prompt {prompt.id} "
        f"(task {task.id})" + ADVICE,
        "items",
    )
    assert db_state(db, TABLES) == before


def test_another_set_of_responses_for_the_same_prompt_is_a_new_task(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, 3)
    a, b, c = response_ids(db, prompt)
    task_service.add_tasks(db, queue.id, items((prompt.id, [a, b])))

    added = task_service.add_tasks(db, queue.id, items((prompt.id, [a, c]), (prompt.id, [a, b, c])))

    assert [t.prompt_id for t in added] == [prompt.id, prompt.id]
    assert len(db.scalars(select(Task.id).where(Task.queue_id == queue.id)).all()) == 3


def test_the_same_task_twice_in_one_request_is_refused(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, 2)
    a, b = response_ids(db, prompt)
    before = db_state(db, TABLES)

    with pytest.raises(Conflict) as caught:
        task_service.add_tasks(db, queue.id, items((prompt.id, [a, b]), (prompt.id, [b, a])))

    assert caught.value.message == (
        f"the same task is asked for twice for prompt {prompt.id}" + ADVICE
    )
    assert db_state(db, TABLES) == before


def test_a_retired_task_or_another_queues_does_not_count(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    other = make_queue(db, project, admin, name="Other")
    prompt = make_prompt(db, project, 2)
    (task,) = task_service.add_tasks(db, queue.id, items((prompt.id, response_ids(db, prompt))))
    task_service.add_tasks(db, other.id, items((prompt.id, response_ids(db, prompt))))
    task.retired_at = datetime(2030, 1, 1, tzinfo=UTC)
    db.commit()

    again = task_service.add_tasks_for_prompts(db, queue.id, [prompt.id])

    assert [t.prompt_id for t in again.tasks] == [prompt.id]


def test_prompts_whose_task_exists_are_refused_by_name_in_either_kind_of_queue(
    db: Session, admin: User, project: Project
) -> None:
    compare = make_queue(db, project, admin)
    write = make_queue(db, project, admin, kind="demonstration")
    first, second, third = (make_prompt(db, project, 2) for _ in range(3))
    compared = task_service.add_tasks_for_prompts(db, compare.id, [first.id, second.id]).tasks
    written = task_service.add_tasks_for_prompts(db, write.id, [second.id]).tasks
    before = db_state(db, TABLES)

    with pytest.raises(Conflict) as caught:
        task_service.add_tasks_for_prompts(db, compare.id, [third.id, second.id, first.id])
    assert (caught.value.message, caught.value.field) == (
        f"comparison queue already has a task with the same responses for prompt {second.id} "
        f"(task {compared[1].id}), prompt {first.id} (task {compared[0].id})" + ADVICE,
        "prompt_ids",
    )
    with pytest.raises(Conflict) as caught:
        task_service.add_tasks_from_prompts(db, write.id, [second.id])
    assert caught.value.message == (
        f"demonstration queue already has a task with the same responses for prompt "
        f"{second.id} (task {written[0].id})" + ADVICE
    )
    assert db_state(db, TABLES) == before


def test_a_new_round_of_responses_makes_a_new_comparison_task(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    prompt = make_prompt(db, project, 2)
    task_service.add_tasks_for_prompts(db, queue.id, [prompt.id])
    db.add(Response(prompt_id=prompt.id, content="a new sample", source=ResponseSource.imported))
    db.commit()

    added = task_service.add_tasks_for_prompts(db, queue.id, [prompt.id])

    assert task_service.response_ids_by_task(db, [added.tasks[0].id]) == {
        added.tasks[0].id: response_ids(db, prompt)
    }


def test_skipping_tasked_prompts_adds_the_rest_and_names_the_skipped(
    db: Session, admin: User, project: Project
) -> None:
    queue = make_queue(db, project, admin)
    first, second = make_prompt(db, project, 2), make_prompt(db, project, 2)
    task_service.add_tasks_for_prompts(db, queue.id, [first.id])

    added = task_service.add_tasks_for_prompts(
        db, queue.id, [first.id, second.id], skip_tasked=True
    )

    assert [t.prompt_id for t in added.tasks] == [second.id]
    assert added.already_tasked_prompt_ids == [first.id]


@pytest.mark.slow
def test_admins_adding_the_same_task_at_once_make_it_once(own_database: str) -> None:
    # Each thread's own connection; on PostgreSQL they race for the queue's row (without the
    # lock, 3 runs of 3 stored it more than once), on SQLite they take turns.
    adders = 12 if own_database.startswith("postgresql") else 4
    engine = make_engine(own_database, pool_size=adders + 2, max_overflow=0)
    sessions = session_factory(engine)
    with sessions() as db:
        project = make_project(db)
        admin = make_user(db, "boss", Role.admin)
        queue = make_queue(db, project, admin)
        prompt = make_prompt(db, project, 2)
        queue_id, prompt_id = queue.id, prompt.id
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(adders)

    def add() -> None:
        with sessions() as db:
            start.wait()
            try:
                task_service.add_tasks_for_prompts(db, queue_id, [prompt_id])
                outcome = "added"
            except Conflict:
                db.rollback()
                outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=add) for _ in range(adders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["added"] + ["refused"] * (adders - 1)
    with sessions() as db:
        assert len(db.scalars(select(Task.id).where(Task.queue_id == queue_id)).all()) == 1
    engine.dispose()
