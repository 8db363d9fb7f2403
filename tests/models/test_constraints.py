"""The database itself refuses bad rows, on SQLite and PostgreSQL alike.

Each violation runs inside a savepoint (`db.begin_nested()`), so the test's transaction stays
usable after the IntegrityError and later statements still see the rows built before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import TextClause, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    ModelRole,
    Pair,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    Run,
    RunKind,
    Task,
    User,
)
from app.models.base import UTCDateTime, utcnow
from tests.conftest import make_user

# --- helpers ----------------------------------------------------------------------------------


def add(db: Session, *rows: Any) -> None:
    db.add_all(rows)
    db.flush()


def assert_rejected(db: Session, *rows: Any) -> None:
    """Inserting `rows` fails with an IntegrityError; the savepoint keeps the test going."""
    with pytest.raises(IntegrityError), db.begin_nested():
        add(db, *rows)


def assert_sql_rejected(db: Session, sql: str | TextClause, params: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(text(sql) if isinstance(sql, str) else sql, params)


def make_project(db: Session, name: str = "constraints") -> Project:
    project = Project(name=name, label_schema={"flags": []})
    add(db, project)
    return project


def make_prompt(db: Session, project: Project) -> Prompt:
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Name a colour."}],
        source="test",
        content_hash="0" * 64,
    )
    add(db, prompt)
    return prompt


def make_response(db: Session, prompt: Prompt, content: str) -> Response:
    response = Response(prompt_id=prompt.id, content=content, source=ResponseSource.imported)
    add(db, response)
    return response


def make_queue(db: Session, project: Project, name: str = "rank") -> Queue:
    queue = Queue(project_id=project.id, name=name, kind=QueueKind.comparison)
    add(db, queue)
    return queue


def make_task(db: Session, queue: Queue, prompt: Prompt) -> Task:
    task = Task(queue_id=queue.id, prompt_id=prompt.id)
    add(db, task)
    return task


def new_assignment(task: Task, labeler: User, status: AssignmentStatus) -> Assignment:
    now = utcnow()
    return Assignment(
        task_id=task.id,
        labeler_id=labeler.id,
        status=status,
        leased_at=now,
        lease_expires_at=now + timedelta(hours=1),
    )


def make_comparison(db: Session, prompt: Prompt) -> Comparison:
    comparison = Comparison(prompt_id=prompt.id, source=LabelSource.imported)
    add(db, comparison)
    return comparison


@dataclass
class World:
    project: Project
    prompt: Prompt
    responses: list[Response]
    queue: Queue
    task: Task
    comparison: Comparison
    labeler: User


@pytest.fixture
def world(db: Session) -> World:
    project = make_project(db)
    prompt = make_prompt(db, project)
    responses = [make_response(db, prompt, content) for content in ("red", "green", "blue")]
    queue = make_queue(db, project)
    return World(
        project=project,
        prompt=prompt,
        responses=responses,
        queue=queue,
        task=make_task(db, queue, prompt),
        comparison=make_comparison(db, prompt),
        labeler=make_user(db, "constraint-labeler"),
    )


def count(db: Session, model: type[Any]) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


# --- comparison items -------------------------------------------------------------------------


@pytest.mark.parametrize("score", [0, 8])
def test_comparison_item_score_outside_1_to_7_is_rejected(
    db: Session, world: World, score: int
) -> None:
    item = ComparisonItem(
        comparison_id=world.comparison.id, response_id=world.responses[0].id, score=score
    )
    assert_rejected(db, item)
    assert count(db, ComparisonItem) == 0


def test_comparison_item_scores_1_and_7_are_accepted(db: Session, world: World) -> None:
    low, high, _ = world.responses
    add(
        db,
        ComparisonItem(comparison_id=world.comparison.id, response_id=low.id, score=1, rank=2),
        ComparisonItem(comparison_id=world.comparison.id, response_id=high.id, score=7, rank=1),
    )
    scores = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.score).order_by(ComparisonItem.score)
    ).all()
    assert [tuple(row) for row in scores] == [(low.id, 1), (high.id, 7)]


# --- users ------------------------------------------------------------------------------------


def new_user(username: str) -> User:
    return User(username=username, password_hash="not-a-real-hash", role=Role.labeler)


def test_duplicate_username_is_rejected(db: Session) -> None:
    add(db, new_user("ada"))
    assert_rejected(db, new_user("ada"))
    assert db.scalars(select(User.username)).all() == ["ada"]


def test_upper_case_username_is_rejected_by_the_check_constraint(db: Session) -> None:
    # Bypasses the schema's normalisation on purpose: the database must hold the line too.
    assert_rejected(db, new_user("Ada"))
    assert count(db, User) == 0


# --- assignments: one live assignment per task and labeler ------------------------------------


LIVE = [AssignmentStatus.active, AssignmentStatus.submitted]


@pytest.mark.parametrize("first", LIVE)
@pytest.mark.parametrize("second", LIVE)
def test_second_live_assignment_for_same_task_and_labeler_is_rejected(
    db: Session, world: World, first: AssignmentStatus, second: AssignmentStatus
) -> None:
    add(db, new_assignment(world.task, world.labeler, first))
    assert_rejected(db, new_assignment(world.task, world.labeler, second))
    assert db.scalars(select(Assignment.status)).all() == [first]


def test_finished_assignments_do_not_block_a_new_active_one(db: Session, world: World) -> None:
    add(db, new_assignment(world.task, world.labeler, AssignmentStatus.skipped))
    add(db, new_assignment(world.task, world.labeler, AssignmentStatus.expired))
    add(db, new_assignment(world.task, world.labeler, AssignmentStatus.active))
    statuses = db.scalars(select(Assignment.status).order_by(Assignment.id)).all()
    assert statuses == [
        AssignmentStatus.skipped,
        AssignmentStatus.expired,
        AssignmentStatus.active,
    ]


def test_another_labeler_may_hold_the_same_task(db: Session, world: World) -> None:
    other = make_user(db, "other-labeler")
    add(db, new_assignment(world.task, world.labeler, AssignmentStatus.active))
    add(db, new_assignment(world.task, other, AssignmentStatus.active))
    assert count(db, Assignment) == 2


# --- foreign keys -----------------------------------------------------------------------------


def test_prompt_with_unknown_project_is_rejected(db: Session) -> None:
    prompt = Prompt(
        project_id=999_999,
        messages=[{"role": "user", "content": "Hello?"}],
        source="test",
        content_hash="0" * 64,
    )
    assert_rejected(db, prompt)
    assert count(db, Prompt) == 0


def test_assignment_with_unknown_labeler_is_rejected(db: Session, world: World) -> None:
    now = utcnow()
    assignment = Assignment(
        task_id=world.task.id,
        labeler_id=999_999,
        leased_at=now,
        lease_expires_at=now + timedelta(hours=1),
    )
    assert_rejected(db, assignment)
    assert count(db, Assignment) == 0


# --- check constraints on other tables --------------------------------------------------------


def test_pair_with_winner_equal_to_loser_is_rejected(db: Session, world: World) -> None:
    response = world.responses[0]
    pair = Pair(
        comparison_id=world.comparison.id,
        prompt_id=world.prompt.id,
        winner_response_id=response.id,
        loser_response_id=response.id,
    )
    assert_rejected(db, pair)
    assert count(db, Pair) == 0


def test_pair_of_distinct_responses_is_accepted(db: Session, world: World) -> None:
    winner, loser, _ = world.responses
    add(
        db,
        Pair(
            comparison_id=world.comparison.id,
            prompt_id=world.prompt.id,
            winner_response_id=winner.id,
            loser_response_id=loser.id,
            margin=2.0,
        ),
    )
    assert count(db, Pair) == 1


def test_queue_max_overlap_below_overlap_is_rejected(db: Session, world: World) -> None:
    queue = Queue(
        project_id=world.project.id,
        name="too-narrow",
        kind=QueueKind.comparison,
        overlap=3,
        max_overlap=2,
    )
    assert_rejected(db, queue)
    assert db.scalars(select(Queue.name)).all() == ["rank"]


def test_run_progress_above_1_is_rejected(db: Session, world: World) -> None:
    run = Run(project_id=world.project.id, kind=RunKind.sft, base_model_ref="gpt2", progress=1.5)
    assert_rejected(db, run)
    add(db, Run(project_id=world.project.id, kind=RunKind.sft, base_model_ref="gpt2", progress=1))
    assert db.scalars(select(Run.progress)).all() == [1.0]


def test_model_without_path_or_hub_name_is_rejected(db: Session) -> None:
    assert_rejected(db, Model(name="nowhere", role=ModelRole.policy))
    add(db, Model(name="on-the-hub", role=ModelRole.policy, hub_name="gpt2"))
    assert db.scalars(select(Model.name)).all() == ["on-the-hub"]


def test_human_response_without_author_is_rejected(db: Session, world: World) -> None:
    orphan = Response(prompt_id=world.prompt.id, content="mine", source=ResponseSource.human)
    assert_rejected(db, orphan)
    signed = Response(
        prompt_id=world.prompt.id,
        content="mine",
        source=ResponseSource.human,
        author_id=world.labeler.id,
    )
    add(db, signed)
    assert count(db, Response) == 4


# --- enum columns, written with raw SQL past SQLAlchemy's own validation ----------------------

INSERT_USER = (
    "INSERT INTO users (username, display_name, password_hash, role, is_active,"
    " must_change_password, updated_at)"
    " VALUES (:username, '', 'x', :value, :yes, :no, CURRENT_TIMESTAMP)"
)
INSERT_QUEUE = (
    "INSERT INTO queues (project_id, name, kind, overlap, max_overlap, priority, lease_seconds,"
    " max_active_leases, open_to_all, is_paused)"
    " VALUES (:project_id, :name, :value, 1, 1, 0, 60, 1, :yes, :no)"
)
# The timestamps go through UTCDateTime, which stores them the way each backend expects.
INSERT_ASSIGNMENT = text(
    "INSERT INTO assignments (task_id, labeler_id, status, leased_at, lease_expires_at,"
    " idle_seconds) VALUES (:task_id, :labeler_id, :value, :leased_at, :expires_at, 0)"
).bindparams(
    bindparam("leased_at", type_=UTCDateTime()), bindparam("expires_at", type_=UTCDateTime())
)


@pytest.mark.parametrize(("value", "accepted"), [("king", False), ("admin", True)])
def test_users_role_accepts_only_known_values(db: Session, value: str, accepted: bool) -> None:
    params: dict[str, Any] = {"username": "raw", "value": value, "yes": True, "no": False}
    if accepted:
        db.execute(text(INSERT_USER), params)
        assert db.scalars(select(User.role)).all() == [Role.admin]
    else:
        assert_sql_rejected(db, INSERT_USER, params)
        assert count(db, User) == 0


@pytest.mark.parametrize(("value", "accepted"), [("ranking", False), ("comparison", True)])
def test_queues_kind_accepts_only_known_values(
    db: Session, world: World, value: str, accepted: bool
) -> None:
    params: dict[str, Any] = {"project_id": world.project.id, "name": "raw", "value": value}
    params |= {"yes": True, "no": False}
    if accepted:
        db.execute(text(INSERT_QUEUE), params)
        assert count(db, Queue) == 2
    else:
        assert_sql_rejected(db, INSERT_QUEUE, params)
        assert count(db, Queue) == 1


@pytest.mark.parametrize(("value", "accepted"), [("lost", False), ("released", True)])
def test_assignments_status_accepts_only_known_values(
    db: Session, world: World, value: str, accepted: bool
) -> None:
    now = utcnow()
    params: dict[str, Any] = {
        "task_id": world.task.id,
        "labeler_id": world.labeler.id,
        "value": value,
        "leased_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    if accepted:
        db.execute(INSERT_ASSIGNMENT, params)
        assert db.scalars(select(Assignment.status)).all() == [AssignmentStatus.released]
    else:
        assert_sql_rejected(db, INSERT_ASSIGNMENT, params)
        assert count(db, Assignment) == 0
