"""Judge runs on the web side: what launching checks and writes for the worker, and how a
finished run's output becomes AI labels."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import (
    Comparison,
    ComparisonItem,
    JudgeTemplate,
    LabelSource,
    ModelRole,
    Project,
    QueueKind,
    ResponseScore,
    Role,
    Run,
    RunKind,
    RunStatus,
    TaskResponse,
    User,
)
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.schemas.training import RunCreate
from app.services import runs
from app.services.judging.recording import OUTPUT_FILE, reward_ranks, reward_scores
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import (
    make_comparison_tasks,
    make_project,
    make_queue,
    publish_guideline,
)
from tests.judge_world import build_judge_world
from tests.training_factories import make_model, queued_messages

WORKER = "judge@test"


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def rhea(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)


def launch(db: Session, settings: Settings, project: Project, acting: User, **given: Any) -> Run:
    data = RunCreate(kind="judge", hyperparameters=given.pop("hyperparameters", {}), **given)
    return runs.create_run(db, settings, project.id, data, acting=acting)


def input_rows(settings: Settings, run: Run) -> list[dict]:
    path = settings.data_dir / "runs" / str(run.id) / "input" / "tasks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_reward_judge_is_queued_with_each_tasks_responses(
    db: Session, settings: Settings, project: Project, rhea: User
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, project=project)
    queue = make_queue(db, project)
    tasks = make_comparison_tasks(db, queue, project, 2, responses_each=3)
    run = launch(
        db, settings, project, rhea, base_model_id=reward.id,
        hyperparameters={"queue_id": queue.id, "task_limit": 1},
    )  # fmt: skip
    assert (run.kind, run.status, run.base_model_id) == (RunKind.judge, RunStatus.queued, reward.id)
    assert run.hyperparameters["mode"] == "reward"
    assert run.hyperparameters["guideline_version_id"] is None
    shown = list(
        db.scalars(
            select(TaskResponse.response_id)
            .where(TaskResponse.task_id == tasks[0].id)
            .order_by(TaskResponse.position)
        )
    )
    assert input_rows(settings, run) == [
        {
            "task_id": tasks[0].id,
            "prompt_id": tasks[0].prompt_id,
            "response_ids": shown,
            "messages": [{"role": "user", "content": "prompt 0"}],
            "contents": ["answer 0", "answer 1", "answer 2"],
        }
    ]
    assert queued_messages(settings) == 1


def test_a_generative_judge_is_asked_with_the_template_and_the_guideline(
    db: Session, settings: Settings, project: Project, rhea: User
) -> None:
    policy = make_model(db, settings, "lm", ModelRole.policy, project=project)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    with pytest.raises(DomainError, match="no published guideline"):
        launch(db, settings, project, rhea, base_model_id=policy.id,
               hyperparameters={"queue_id": queue.id})  # fmt: skip
    assert db.scalar(select(JudgeTemplate.id)) is None  # the refusal saved nothing
    guideline = publish_guideline(db, project, 1, body="Prefer {short} answers.")
    run = launch(db, settings, project, rhea, base_model_id=policy.id,
                 hyperparameters={"queue_id": queue.id})  # fmt: skip
    assert run.hyperparameters["mode"] == "generative"
    assert run.hyperparameters["template_version"] == 1
    assert run.hyperparameters["guideline_version_id"] == guideline.id
    [row] = input_rows(settings, run)
    [message] = row["judge_messages"]
    text = message["content"]
    assert message["role"] == "user"
    # The guideline's braces stay as written; the answers are shown under their letters.
    assert "# Guideline\nPrefer {short} answers.\n" in text
    assert "# Conversation\nUser: prompt 0\n" in text
    assert "Response A:\nanswer 0\n\nResponse B:\nanswer 1" in text
    assert "Rank the answers A, B from best to worst" in text
    template = db.scalar(select(JudgeTemplate))
    assert (template.version, template.note) == (1, "the built-in template")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"hyperparameters": {}}, "exactly one of: a comparison queue"),
        ({"hyperparameters": {"template_version": 1}}, "a reward model is not prompted"),
        ({"hyperparameters": {"mode": "generative"}}, "so it judges in reward mode"),
        ({"hyperparameters": {"guideline_version_id": 1}}, "filled in at launch"),
        ({"reward_model_id": "rm"}, "a judge run's only model is its judge"),
        ({"hyperparameters": {"queue": "demonstration"}}, "is a demonstration queue"),
        ({"hyperparameters": {"tie_epsilon": -1}}, "greater than or equal to 0"),
    ],
)
def test_bad_judge_runs_are_refused_and_queue_nothing(
    db: Session, settings: Settings, project: Project, rhea: User, given: dict, message: str
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, project=project)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1, responses_each=2)
    given = copy.deepcopy(given)  # the parameters are shared by the database variants
    hyper = dict(given.pop("hyperparameters", {}))
    if hyper.pop("queue", None) == "demonstration":
        hyper["queue_id"] = make_queue(db, project, QueueKind.demonstration, name="demos").id
    elif hyper:
        hyper["queue_id"] = queue.id
    if given.get("reward_model_id") == "rm":
        given["reward_model_id"] = reward.id
        hyper["queue_id"] = queue.id
    with pytest.raises(DomainError, match=message):
        launch(db, settings, project, rhea, base_model_id=reward.id, hyperparameters=hyper, **given)
    assert db.scalar(select(Run.id)) is None
    assert queued_messages(settings) == 0


def test_reward_rules_rank_by_reward_tie_within_epsilon_and_map_scores() -> None:
    assert reward_ranks([0.5, 2.0, 0.5004, -1.0], 1e-3) == [2, 1, 2, 3]
    # Each within epsilon of the one just above it: a chain of ties is one tie.
    assert reward_ranks([0.5, 0.5009, 0.5018], 1e-3) == [1, 1, 1]
    # 4 + 3 tanh(reward - mean), rounded half up; the mean of these is 0.
    assert reward_scores([3.0, 0.0, -3.0], 1.0) == [7, 4, 1]
    assert reward_scores([0.2, -0.2], 1.0) == [5, 3]
    assert reward_scores([0.2, -0.2], 10.0) == [4, 4]


def test_a_finished_reward_judge_stores_ai_labels_and_its_rewards(
    db: Session, settings: Settings, project: Project, rhea: User
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, project=project)
    queue = make_queue(db, project)
    tasks = make_comparison_tasks(db, queue, project, 2, responses_each=3)
    run = launch(db, settings, project, rhea, base_model_id=reward.id,
                 hyperparameters={"queue_id": queue.id})  # fmt: skip
    rows = input_rows(settings, run)
    output = settings.data_dir / "runs" / str(run.id) / "model"
    output.mkdir(parents=True)
    rewards = [[1.0, -1.0, 1.0005], [0.0, 0.3, -0.3]]
    (output / OUTPUT_FILE).write_text("".join(
        json.dumps({"task_id": row["task_id"], "prompt_id": row["prompt_id"],
                    "response_ids": row["response_ids"], "rewards": values}) + "\n"
        for row, values in zip(rows, rewards, strict=True)
    ))  # fmt: skip
    runs.claim_run(db, run.id, WORKER)
    done = runs.complete_run(
        db, settings, run.id, WORKER, metrics={}, model_dir=output, role=None,
        settings_used={}, stopped=False,
    )  # fmt: skip
    assert done is not None and done.status == RunStatus.succeeded
    assert done.metrics["eval"] == {"labels": 2, "unparsed": 0, "tasks": 2}
    labels = list(db.scalars(select(Comparison).order_by(Comparison.id)))
    assert [(c.task_id, c.source, c.model_id, c.run_id, c.judge_template_id) for c in labels] == [
        (tasks[0].id, LabelSource.ai, reward.id, run.id, None),
        (tasks[1].id, LabelSource.ai, reward.id, run.id, None),
    ]
    items = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.rank, ComparisonItem.score)
        .where(ComparisonItem.comparison_id == labels[0].id)
        .order_by(ComparisonItem.response_id)
    ).all()
    first = rows[0]["response_ids"]
    # 1.0 and 1.0005 tie (within 1e-3); the mean is 1/3.
    assert {rid: (rank, score) for rid, rank, score in items} == {
        first[0]: (1, 6), first[1]: (2, 1), first[2]: (1, 6),
    }  # fmt: skip
    stored = dict(db.execute(select(ResponseScore.response_id, ResponseScore.score)).all())
    assert stored[first[1]] == -1.0 and len(stored) == 6


def test_a_judge_takes_a_preference_snapshots_tasks(
    db: Session, settings: Settings, rhea: User
) -> None:
    settings.ensure_data_dir()
    world = build_judge_world(db, settings.data_dir)
    snapshot = create_snapshot(
        db, settings, world.project.id,
        SnapshotCreate(name="people", kind="preference", filters=SnapshotFilters()), rhea,
    )  # fmt: skip
    reward = make_model(db, settings, "rm", ModelRole.reward, project=world.project)
    run = launch(db, settings, world.project, rhea, base_model_id=reward.id,
                 snapshot_id=snapshot.id)  # fmt: skip
    assert [(row["task_id"], row["response_ids"]) for row in input_rows(settings, run)] == [
        (task.id, sorted(r.id for r in responses))
        for task, responses in zip(world.tasks, world.responses, strict=True)
    ]
