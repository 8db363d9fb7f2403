"""Generation and score runs on the web side: what launching checks and writes for the worker,
and how a finished run's output becomes responses, reward scores and comparison tasks."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    LabelSource,
    Model,
    ModelRole,
    Project,
    Prompt,
    QueueKind,
    Response,
    ResponseScore,
    ResponseSource,
    Role,
    Run,
    RunKind,
    RunStatus,
    SnapshotKind,
    Task,
    TaskResponse,
    User,
)
from app.schemas.training import RunCreate
from app.services import runs
from app.services.generation.selection import most_disputed, prompt_agreement
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project, make_prompt, make_queue, make_responses
from tests.training_factories import make_model, make_snapshot, queued_messages

WORKER = "gen@test"


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def rhea(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)


@pytest.fixture
def policy(db: Session, settings: Settings, project: Project) -> Model:
    return make_model(db, settings, "policy-1", project=project)


def prompts(db: Session, project: Project, count: int) -> list[int]:
    ids = [make_prompt(db, project, f"Describe place {index}.").id for index in range(count)]
    db.commit()
    return ids


def launch(db: Session, settings: Settings, project: Project, acting: User, **given: Any) -> Run:
    hyperparameters = given.pop("hyperparameters", {})
    data = RunCreate(kind=given.pop("kind", "generate"), hyperparameters=hyperparameters, **given)
    return runs.create_run(db, settings, project.id, data, acting=acting)


def input_rows(settings: Settings, run: Run, name: str = "prompts.jsonl") -> list[dict]:
    path = settings.data_dir / "runs" / str(run.id) / "input" / name
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- launching ------------------------------------------------------------------------------


def test_a_generation_run_is_queued_with_its_prompts_written_for_the_worker(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    ids = prompts(db, project, 3)
    queue = make_queue(db, project)
    run = launch(
        db, settings, project, rhea, base_model_id=policy.id,
        hyperparameters={"prompt_ids": [ids[2], ids[0]], "target_queue_id": queue.id},
    )  # fmt: skip

    assert (run.kind, run.status, run.base_model_id) == (
        RunKind.generate,
        RunStatus.queued,
        policy.id,
    )
    assert run.hyperparameters["samples_per_prompt"] == 4
    assert run.hyperparameters["target_queue_id"] == queue.id
    assert input_rows(settings, run) == [
        {"prompt_id": ids[2], "messages": [{"role": "user", "content": "Describe place 2."}]},
        {"prompt_id": ids[0], "messages": [{"role": "user", "content": "Describe place 0."}]},
    ]
    assert queued_messages(settings) == 1


def test_prompts_come_from_a_queue_or_a_snapshot_split(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    ids = prompts(db, project, 4)
    source = make_queue(db, project, QueueKind.demonstration, name="demos")
    for prompt_id in (ids[3], ids[1], ids[3]):
        db.add(Task(queue_id=source.id, prompt_id=prompt_id, overlap=1))
    snapshot = make_snapshot(db, settings, project, SnapshotKind.prompts)
    folder = settings.data_dir / snapshot.path
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"prompt": [], "prompt_id": pid}) + "\n" for pid in ids[:3])
    )
    (folder / "test.jsonl").write_text(json.dumps({"prompt": [], "prompt_id": ids[3]}) + "\n")
    db.commit()

    from_queue = launch(
        db, settings, project, rhea, base_model_id=policy.id,
        hyperparameters={"prompt_queue_id": source.id},
    )  # fmt: skip
    held_out = launch(
        db, settings, project, rhea, base_model_id=policy.id, snapshot_id=snapshot.id,
        hyperparameters={"split": "test"},
    )  # fmt: skip
    everything = launch(
        db, settings, project, rhea, base_model_id=policy.id, snapshot_id=snapshot.id
    )

    assert [row["prompt_id"] for row in input_rows(settings, from_queue)] == [ids[3], ids[1]]
    assert [row["prompt_id"] for row in input_rows(settings, held_out)] == [ids[3]]
    assert [row["prompt_id"] for row in input_rows(settings, everything)] == ids
    assert held_out.snapshot_id == snapshot.id


def test_a_prompt_limit_picks_a_seeded_random_sample(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    ids = prompts(db, project, 10)
    run = launch(
        db, settings, project, rhea, base_model_id=policy.id,
        hyperparameters={"prompt_ids": ids, "prompt_limit": 3, "seed": 7},
    )  # fmt: skip
    assert [row["prompt_id"] for row in input_rows(settings, run)] == random.Random(7).sample(
        ids, 3
    )


def judge(db: Session, labeler: User, prompt_id: int, ranks: dict[int, int]) -> None:
    comparison = Comparison(prompt_id=prompt_id, labeler_id=labeler.id, source=LabelSource.labeler)
    db.add(comparison)
    db.flush()
    db.add_all(
        ComparisonItem(comparison_id=comparison.id, response_id=rid, rank=rank, score=4)
        for rid, rank in ranks.items()
    )
    db.flush()


def test_disagreement_selection_takes_the_prompts_labelers_disputed_most(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    ids = prompts(db, project, 4)
    ann, bob, cy = (make_user(db, name) for name in ("ann", "bob", "cy"))
    agreed, split, lone = ids[0], ids[1], ids[2]
    a1, a2 = make_responses(db, _prompt(db, agreed), 2)
    s1, s2, s3 = make_responses(db, _prompt(db, split), 3)
    l1, l2 = make_responses(db, _prompt(db, lone), 2)
    for labeler in (ann, bob):
        judge(db, labeler, agreed, {a1.id: 1, a2.id: 2})
    # On `split` ann and bob order (s1, s2) and (s1, s3) oppositely and agree on (s2, s3);
    # cy judges like ann: ann-bob 1 of 3, ann-cy 3 of 3, bob-cy 1 of 3, so 5 of 9 agree.
    judge(db, ann, split, {s1.id: 1, s2.id: 2, s3.id: 3})
    judge(db, bob, split, {s1.id: 3, s2.id: 1, s3.id: 2})
    judge(db, cy, split, {s1.id: 1, s2.id: 2, s3.id: 3})
    judge(db, ann, lone, {l1.id: 1, l2.id: 2})
    db.commit()

    assert prompt_agreement(db, ids) == {agreed: 1.0, split: pytest.approx(5 / 9)}
    assert most_disputed(db, ids, 1) == [split]
    run = launch(
        db, settings, project, rhea, base_model_id=policy.id,
        hyperparameters={"prompt_ids": ids, "prompt_limit": 5, "selection": "disagreement"},
    )  # fmt: skip
    assert [row["prompt_id"] for row in input_rows(settings, run)] == [split, agreed]


def _prompt(db: Session, prompt_id: int) -> Prompt:
    prompt = db.get(Prompt, prompt_id)
    assert prompt is not None
    return prompt


BAD_GENERATIONS = [
    pytest.param(
        {"base_model_id": 999_999}, "no model with id 999999", id="model that does not exist"
    ),
    pytest.param(
        {"base_model_id": "reward"},
        "is a reward model, not a policy model",
        id="reward model as the generator",
    ),
    pytest.param(
        {"base_model_ref": "models/x"},
        "generation needs a registered model",
        id="unregistered folder",
    ),
    pytest.param(
        {"hyperparameters": {"samples_per_prompt": 1, "target_queue_id": "queue"}},
        "a comparison task needs two answers to compare: samples_per_prompt must be at least 2",
        id="N below 2 for a comparison queue",
    ),
    pytest.param(
        {"reward_model_id": "policy", "hyperparameters": {"best_of_n": True}},
        "is a policy model, not a reward model",
        id="reward model that is not a reward model",
    ),
    pytest.param(
        {"hyperparameters": {"best_of_n": True}},
        "best_of_n needs a reward model",
        id="best-of-N without a reward model",
    ),
    pytest.param(
        {"hyperparameters": {"target_queue_id": "demo queue"}},
        "is a demonstration queue; samples go to a comparison queue",
        id="demonstration queue",
    ),
    pytest.param(
        {"hyperparameters": {"target_queue_id": "other queue"}},
        "belongs to another project",
        id="queue of another project",
    ),
    pytest.param(
        {"hyperparameters": {"target_queue_id": "queue", "compare_model_id": "policy"}},
        "compare two different models",
        id="model against itself",
    ),
    pytest.param(
        {"hyperparameters": {"prompt_ids": None}},
        "take the prompts from exactly one of",
        id="no prompts named",
    ),
    pytest.param(
        {"hyperparameters": {"prompt_ids": "other prompts"}},
        "are not prompts of project",
        id="prompts of another project",
    ),
    pytest.param(
        {"hyperparameters": {"split": "test"}},
        "split chooses part of a snapshot",
        id="split without a snapshot",
    ),
    pytest.param(
        {"hyperparameters": {"selection": "disagreement", "prompt_limit": 1}},
        "none has a disagreement figure",
        id="nothing disputed",
    ),
    pytest.param(
        {
            "hyperparameters": {
                "samples_per_prompt": 8,
                "compare_model_id": "other policy",
                "include_demonstration": True,
                "target_queue_id": "queue",
            }
        },
        "each task would show 10 responses",
        id="too many candidates",
    ),
    pytest.param(
        {"hyperparameters": {"temperature": 0}},
        "hyperparameters.temperature: Input should be greater than 0",
        id="temperature 0",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_GENERATIONS)
def test_bad_generation_is_refused_before_anything_is_queued(
    db: Session,
    settings: Settings,
    project: Project,
    rhea: User,
    policy: Model,
    change: dict[str, Any],
    message: str,
) -> None:
    ids = prompts(db, project, 2)
    other = make_project(db, "Other")
    named = {
        "policy": policy.id,
        "other policy": make_model(db, settings, "policy-0", project=project).id,
        "reward": make_model(db, settings, "rm", ModelRole.reward, base=policy).id,
        "queue": make_queue(db, project).id,
        "demo queue": make_queue(db, project, QueueKind.demonstration, name="demos").id,
        "other queue": make_queue(db, other, name="elsewhere").id,
        "other prompts": [make_prompt(db, other, "Not ours.").id],
    }
    db.commit()
    given: dict[str, Any] = {"base_model_id": policy.id}
    hyperparameters: dict[str, Any] = {"prompt_ids": ids}
    for key, value in change.items():
        if key == "hyperparameters":
            hyperparameters.update({k: named.get(v, v) if isinstance(v, str) else v
                                    for k, v in value.items()})  # fmt: skip
        elif key == "base_model_ref":
            given = {"base_model_ref": value}
        else:
            given[key] = named.get(value, value) if isinstance(value, str) else value
    hyperparameters = {k: v for k, v in hyperparameters.items() if v is not None}
    runs_before = db.scalar(select(func.count()).select_from(Run))

    with pytest.raises((DomainError, ValueError), match=message):
        launch(db, settings, project, rhea, hyperparameters=hyperparameters, **given)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Run)) == runs_before
    assert queued_messages(settings) == 0
    assert not (settings.data_dir / "runs").exists()


# --- recording ------------------------------------------------------------------------------


def finish(db: Session, settings: Settings, run: Run, rows: list[dict[str, Any]], name: str) -> Run:
    """What the worker does: claim, write the output file, complete."""
    assert runs.claim_run(db, run.id, WORKER) is not None
    output = settings.data_dir / "runs" / str(run.id) / "model"
    output.mkdir(parents=True)
    (output / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = runs.complete_run(
        db, settings, run.id, WORKER, metrics={"prompts": 2.0}, model_dir=output, role=None,
        settings_used={}, stopped=False,
    )  # fmt: skip
    assert done is not None
    return done


def sample(prompt_id: int, content: str, index: int, source: str = "policy", **extra: Any) -> dict:
    return {"prompt_id": prompt_id, "repeat": 0, "source": source, "sample": index,
            "content": content, **extra}  # fmt: skip


def task_contents(db: Session, queue_id: int) -> list[tuple[int, list[str]]]:
    rows = db.execute(
        select(Task.id, Task.prompt_id, Response.content)
        .join(TaskResponse, TaskResponse.task_id == Task.id)
        .join(Response, Response.id == TaskResponse.response_id)
        .where(Task.queue_id == queue_id)
        .order_by(Task.id, TaskResponse.position)
    )
    tasks: dict[int, tuple[int, list[str]]] = {}
    for task_id, prompt_id, content in rows:
        tasks.setdefault(task_id, (prompt_id, []))[1].append(content)
    return list(tasks.values())


def test_samples_become_model_responses_and_shuffled_comparison_tasks(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    first, second = prompts(db, project, 2)
    previous = make_model(db, settings, "policy-0", project=project)
    queue = make_queue(db, project, overlap=2, max_overlap=2)
    human = Response(prompt_id=first, content="A demo.", source=ResponseSource.human,
                     author_id=rhea.id)  # fmt: skip
    db.add(human)
    db.flush()
    db.add(Demonstration(prompt_id=first, labeler_id=rhea.id, source=LabelSource.labeler,
                         messages=[], response_id=human.id))  # fmt: skip
    db.commit()
    run = launch(
        db, settings, project, rhea, base_model_id=policy.id,
        hyperparameters={"prompt_ids": [first, second], "samples_per_prompt": 2, "seed": 3,
                         "target_queue_id": queue.id, "compare_model_id": previous.id,
                         "include_demonstration": True},
    )  # fmt: skip
    done = finish(db, settings, run, [
        sample(first, "Warm.", 0), sample(first, "Kind.", 1),
        # Two identical samples of one model are one candidate.
        sample(second, "Same.", 0), sample(second, "Same.", 1),
        sample(first, "Old first.", 0, "compare"), sample(second, "Old second.", 0, "compare"),
    ], "samples.jsonl")  # fmt: skip

    assert done.status == RunStatus.succeeded
    assert done.output_model_id is None
    assert done.metrics["eval"] == {"prompts": 2.0, "responses": 6, "scores": 0, "tasks": 2,
                                    "tasks_skipped": 0}  # fmt: skip
    made = db.scalars(select(Response).where(Response.run_id == run.id).order_by(Response.id))
    assert [(r.content, r.model_id, r.source) for r in made] == [
        ("Warm.", policy.id, ResponseSource.model), ("Kind.", policy.id, ResponseSource.model),
        ("Same.", policy.id, ResponseSource.model), ("Same.", policy.id, ResponseSource.model),
        ("Old first.", previous.id, ResponseSource.model),
        ("Old second.", previous.id, ResponseSource.model),
    ]  # fmt: skip
    kind = db.scalars(select(Response).where(Response.run_id == run.id)).first()
    assert kind is not None and kind.sampling == {
        "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 32, "seed": 3, "repeat": 0,
        "sample": 0,
    }  # fmt: skip
    tasks = task_contents(db, queue.id)
    assert [(prompt_id, sorted(texts)) for prompt_id, texts in tasks] == [
        (first, ["A demo.", "Kind.", "Old first.", "Warm."]),
        (second, ["Old second.", "Same."]),
    ]
    # The stored order is the seeded shuffle of [samples..., compare, demonstration].
    order = ["Warm.", "Kind.", "Old first.", "A demo."]
    random.Random(f"{run.id}:{first}:0").shuffle(order)
    assert tasks[0][1] == order
    assert db.scalars(select(Task.overlap).where(Task.queue_id == queue.id)).all() == [2, 2]


def test_best_of_n_scores_are_kept_and_a_lone_sample_makes_no_task(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    first, second = prompts(db, project, 2)
    reward = make_model(db, settings, "rm", ModelRole.reward, base=policy)
    queue = make_queue(db, project)
    db.commit()
    run = launch(
        db, settings, project, rhea, base_model_id=policy.id, reward_model_id=reward.id,
        hyperparameters={"prompt_ids": [first, second], "samples_per_prompt": 3,
                         "best_of_n": True, "include_demonstration": True,
                         "target_queue_id": queue.id},
    )  # fmt: skip
    # best-of-N left one sample per prompt; `first` has a demonstration to compare it with in
    # real use, but none here, so no task is made for either prompt.
    done = finish(db, settings, run, [
        sample(first, "Best first.", 2, score=1.5), sample(second, "Best second.", 0, score=-0.25),
    ], "samples.jsonl")  # fmt: skip

    assert done.metrics["eval"]["tasks"] == 0
    assert done.metrics["eval"]["tasks_skipped"] == 2
    scores = db.execute(
        select(Response.content, ResponseScore.score, ResponseScore.model_id, ResponseScore.run_id)
        .join(ResponseScore, ResponseScore.response_id == Response.id)
        .order_by(Response.id)
    ).all()
    assert [tuple(row) for row in scores] == [
        ("Best first.", 1.5, reward.id, run.id),
        ("Best second.", -0.25, reward.id, run.id),
    ]
    best = db.scalars(select(Response.sampling).where(Response.run_id == run.id)).first()
    assert best is not None and best["best_of"] == 3


def test_a_score_run_scores_the_judged_responses_and_replaces_older_scores(
    db: Session, settings: Settings, project: Project, rhea: User, policy: Model
) -> None:
    (prompt_id,) = prompts(db, project, 1)
    reward = make_model(db, settings, "rm", ModelRole.reward, base=policy)
    judged_a, judged_b, unjudged = make_responses(db, _prompt(db, prompt_id), 3)
    judge(db, rhea, prompt_id, {judged_a.id: 1, judged_b.id: 2})
    db.add(ResponseScore(response_id=judged_a.id, model_id=reward.id, score=9.0))
    db.commit()

    run = launch(db, settings, project, rhea, kind="score", reward_model_id=reward.id)
    assert (run.base_model_id, run.reward_model_id) == (reward.id, reward.id)
    rows = input_rows(settings, run, "responses.jsonl")
    prompt = [{"role": "user", "content": "Describe place 0."}]
    assert rows == [
        {"response_id": judged_b.id, "prompt": prompt, "content": "answer 1"},
        {"response_id": judged_a.id, "prompt": prompt, "content": "answer 0"},
    ]
    done = finish(db, settings, run, [
        {"response_id": judged_b.id, "score": -1.0}, {"response_id": judged_a.id, "score": 2.0},
    ], "scores.jsonl")  # fmt: skip

    assert done.metrics["eval"] == {"prompts": 2.0, "responses_scored": 2, "mean_score": 0.5}
    stored = db.execute(
        select(ResponseScore.response_id, ResponseScore.score, ResponseScore.run_id).order_by(
            ResponseScore.response_id
        )
    ).all()
    assert [tuple(row) for row in stored] == [
        (judged_a.id, 2.0, run.id),
        (judged_b.id, -1.0, run.id),
    ]
    assert unjudged.id not in {row[0] for row in stored}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"reward_model_id": "policy"}, "is a policy model, not a reward model"),
        (
            {"reward_model_id": "reward", "base_model_id": "policy"},
            "a score run names its reward model",
        ),
        (
            {"reward_model_id": "reward", "hyperparameters": {"responses": "judged"}},
            "has no judged responses to score",
        ),
    ],
)
def test_bad_score_runs_are_refused(
    db: Session,
    settings: Settings,
    project: Project,
    rhea: User,
    policy: Model,
    given: dict[str, Any],
    message: str,
) -> None:
    reward = make_model(db, settings, "rm", ModelRole.reward, base=policy)
    db.commit()
    named = {"policy": policy.id, "reward": reward.id}
    values = {key: named.get(value, value) if isinstance(value, str) else value
              for key, value in given.items()}  # fmt: skip
    with pytest.raises(DomainError, match=message):
        launch(db, settings, project, rhea, kind="score", **values)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Run)) == 0
    assert queued_messages(settings) == 0
