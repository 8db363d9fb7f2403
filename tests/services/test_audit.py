"""The reward model against the labelers' consensus, and queueing its disagreements again.

The world (ranks 1 best; every task judged by ann, bob and cat; scores are the reward model's):

  T1 a1 b1       all: a1 > b1             rm: a1 2.0, b1 1.0   agrees
  T2 a2 b2       ann, bob: a2 > b2; cat: b2 > a2
                                          rm: a2 0.5, b2 3.0   disagrees, gap 2.5 (2 of 3)
  T3 a3 b3       all: b3 > a3             rm: a3 1.0, b3 1.0   a tie: disagrees, gap 0
  T4 a4 b4 c4    all: a4 > b4 > c4        rm: a4 5, b4 4, c4 6
                 (a4, b4) agrees; (b4, c4) disagrees, gap 2; (a4, c4) disagrees, gap 1
  T5 a5 b5       all: a5 > b5             rm: a5 only (b5 scored by another model): not scored
  Not counted: an import reversing T1.

7 judged pairs, 6 checked, 2 agreeing; disagreements by gap: T2, T4 (b4 c4), T4 (a4 c4), T3.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    ModelRole,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseScore,
    ResponseSource,
    Role,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.audit import PairRef
from app.services.audit import queue_audit_pairs, reward_audit
from app.services.tasks import response_ids_by_task
from app.settings import Settings
from tests.training_factories import make_model


@dataclass
class AuditWorld:
    project: Project
    other: Project
    reward: Model
    other_reward: Model
    policy: Model
    chat: Queue
    review: Queue
    demos: Queue
    foreign: Queue
    labelers: list[User]
    tasks: list[Task]
    r: dict[str, int]  # "a1" .. "c4": response ids


def _labeler(db: Session, name: str) -> User:
    user = User(username=name, role=Role.labeler, password_hash="not-a-hash")
    db.add(user)
    db.flush()
    return user


def _queue(db: Session, project: Project, name: str, kind: QueueKind) -> Queue:
    queue = Queue(project_id=project.id, name=name, kind=kind, overlap=3, max_overlap=3)
    db.add(queue)
    db.flush()
    return queue


def _judge(db: Session, task: Task, labeler: User | None, order: list[int]) -> None:
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=LabelSource.labeler if labeler else LabelSource.imported,
    )
    db.add(comparison)
    db.flush()
    for rank, response_id in enumerate(order, start=1):
        db.add(ComparisonItem(comparison_id=comparison.id, response_id=response_id, rank=rank))
    db.flush()


def build_audit_world(db: Session, settings: Settings) -> AuditWorld:
    project = Project(name="Audited", label_schema={"flags": []})
    other = Project(name="Elsewhere", label_schema={"flags": []})
    db.add_all([project, other])
    db.flush()
    policy = make_model(db, settings, "policy", project=project)
    reward = make_model(db, settings, "rm", ModelRole.reward, base=policy, project=project)
    other_reward = make_model(db, settings, "rm-2", ModelRole.reward, base=policy)
    chat = _queue(db, project, "chat", QueueKind.comparison)
    review = _queue(db, project, "review", QueueKind.comparison)
    demos = _queue(db, project, "demos", QueueKind.demonstration)
    foreign = _queue(db, other, "foreign", QueueKind.comparison)
    labelers = [_labeler(db, name) for name in ("ann", "bob", "cat")]

    r: dict[str, int] = {}
    tasks = []
    for number, names in enumerate(("a1 b1", "a2 b2", "a3 b3", "a4 b4 c4", "a5 b5"), start=1):
        prompt = Prompt(
            project_id=project.id,
            messages=[{"role": "user", "content": f"Question {number}?"}],
            source="test",
            content_hash=f"{number:064d}",
        )
        db.add(prompt)
        db.flush()
        for name in names.split():
            response = Response(
                prompt_id=prompt.id, content=f"answer {name}", source=ResponseSource.imported
            )
            db.add(response)
            db.flush()
            r[name] = response.id
        task = Task(queue_id=chat.id, prompt_id=prompt.id, overlap=3)
        db.add(task)
        db.flush()
        for position, name in enumerate(names.split()):
            db.add(TaskResponse(task_id=task.id, response_id=r[name], position=position))
        tasks.append(task)
    db.flush()

    ann, bob, cat = labelers
    orders = {
        0: {ann: ["a1", "b1"], bob: ["a1", "b1"], cat: ["a1", "b1"]},
        1: {ann: ["a2", "b2"], bob: ["a2", "b2"], cat: ["b2", "a2"]},
        2: {ann: ["b3", "a3"], bob: ["b3", "a3"], cat: ["b3", "a3"]},
        3: {who: ["a4", "b4", "c4"] for who in labelers},
        4: {who: ["a5", "b5"] for who in labelers},
    }
    for index, by_labeler in orders.items():
        for who, order in by_labeler.items():
            _judge(db, tasks[index], who, [r[name] for name in order])
    _judge(db, tasks[0], None, [r["b1"], r["a1"]])  # an import: not counted

    scores = {"a1": 2.0, "b1": 1.0, "a2": 0.5, "b2": 3.0, "a3": 1.0, "b3": 1.0}
    scores |= {"a4": 5.0, "b4": 4.0, "c4": 6.0, "a5": 1.0}
    db.add_all(
        ResponseScore(response_id=r[name], model_id=reward.id, score=value)
        for name, value in scores.items()
    )
    db.add(ResponseScore(response_id=r["b5"], model_id=other_reward.id, score=0.0))
    db.commit()
    return AuditWorld(
        project,
        other,
        reward,
        other_reward,
        policy,
        chat,
        review,
        demos,
        foreign,
        labelers,
        tasks,
        r,
    )


@pytest.fixture
def world(db: Session, settings: Settings) -> AuditWorld:
    return build_audit_world(db, settings)


def reliability(agreeing: int) -> float:
    """A labeler's reliability here: 14 labeler pairs each, 19 of 21 agreeing overall."""
    return (agreeing + 10 * 19 / 21) / (14 + 10)


def test_agreement_with_the_consensus_and_the_disagreements_by_confidence(
    db: Session, world: AuditWorld
) -> None:
    audit = reward_audit(db, world.project.id, world.reward.id)
    r = world.r
    assert (audit.judged_pairs, audit.checked_pairs, audit.agreeing_pairs) == (7, 6, 2)
    assert audit.agreement_rate == pytest.approx(2 / 6)
    assert (audit.not_scored_pairs, audit.needs_score_run, audit.disagreeing_pairs) == (1, True, 4)
    assert audit.model_name == "rm"
    listed = [
        (p.winner_response_id, p.loser_response_id, p.score_gap, p.labelers, p.agreeing_labelers)
        for p in audit.disagreements
    ]
    assert listed == [
        (r["a2"], r["b2"], 2.5, 3, 2),
        (r["b4"], r["c4"], 2.0, 3, 3),
        (r["a4"], r["c4"], 1.0, 3, 3),
        (r["b3"], r["a3"], 0.0, 3, 3),
    ]
    first = audit.disagreements[0]
    assert (first.task_id, first.prompt_text) == (world.tasks[1].id, "Question 2?")
    assert (first.winner_text, first.loser_text) == ("answer a2", "answer b2")
    assert (first.winner_score, first.loser_score) == (0.5, 3.0)
    # ann and bob (13 of 14 agreeing) against cat (12 of 14).
    ann, cat = reliability(13), reliability(12)
    assert first.support == pytest.approx(2 * ann / (2 * ann + cat))
    assert audit.disagreements[3].support == pytest.approx(1.0)


def test_limit_keeps_the_most_confident_and_the_counts(db: Session, world: AuditWorld) -> None:
    audit = reward_audit(db, world.project.id, world.reward.id, limit=1)
    assert [p.winner_response_id for p in audit.disagreements] == [world.r["a2"]]
    assert audit.disagreeing_pairs == 4


def test_scores_of_every_pair_need_no_score_run(db: Session, world: AuditWorld) -> None:
    db.add(ResponseScore(response_id=world.r["b5"], model_id=world.reward.id, score=0.5))
    db.commit()
    audit = reward_audit(db, world.project.id, world.reward.id)
    assert (audit.checked_pairs, audit.agreeing_pairs, audit.not_scored_pairs) == (7, 3, 0)
    assert audit.needs_score_run is False


def test_a_model_without_scores_checks_nothing(db: Session, world: AuditWorld) -> None:
    audit = reward_audit(db, world.project.id, world.other_reward.id)
    assert (audit.judged_pairs, audit.checked_pairs, audit.agreement_rate) == (7, 0, None)
    assert (audit.not_scored_pairs, audit.disagreements) == (7, [])


def test_a_project_without_comparisons_has_no_pairs(db: Session, world: AuditWorld) -> None:
    audit = reward_audit(db, world.other.id, world.other_reward.id)
    assert (audit.judged_pairs, audit.needs_score_run, audit.disagreements) == (0, False, [])


def test_a_policy_model_or_another_projects_model_is_refused(
    db: Session, world: AuditWorld
) -> None:
    with pytest.raises(InvalidInput, match="policy model") as refused:
        reward_audit(db, world.project.id, world.policy.id)
    assert refused.value.field == "model_id"
    with pytest.raises(InvalidInput, match=f"belongs to project {world.project.id}"):
        reward_audit(db, world.other.id, world.reward.id)
    with pytest.raises(NotFound):
        reward_audit(db, world.project.id, 10**6)
    with pytest.raises(InvalidInput, match="negative"):
        reward_audit(db, world.project.id, world.reward.id, limit=-1)


def test_without_a_project_the_models_own_is_audited(db: Session, world: AuditWorld) -> None:
    audit = reward_audit(db, None, world.reward.id)
    assert (audit.project_id, audit.judged_pairs, audit.agreeing_pairs) == (world.project.id, 7, 2)
    # rm-2 is registered for every project: it needs one named.
    with pytest.raises(InvalidInput, match="say which project") as refused:
        reward_audit(db, None, world.other_reward.id)
    assert refused.value.field == "project_id"


def live_tasks(db: Session, queue: Queue) -> dict[int, list[int]]:
    ids = list(db.scalars(select(Task.id).where(Task.queue_id == queue.id).order_by(Task.id)))
    return response_ids_by_task(db, ids)


def test_every_disagreement_becomes_one_task_and_a_second_call_skips_them(
    db: Session, world: AuditWorld
) -> None:
    ann = world.labelers[0]
    done = queue_audit_pairs(db, world.project.id, world.reward.id, world.review.id, acting=ann)
    assert (done.created, done.skipped) == (4, 0)
    r = world.r
    made = live_tasks(db, world.review)
    assert list(made) == done.task_ids
    assert list(made.values()) == [
        [r["a2"], r["b2"]],
        [r["b4"], r["c4"]],
        [r["a4"], r["c4"]],
        [r["a3"], r["b3"]],  # lower id first: the stored order hides the consensus
    ]
    prompt_of = {task.id: task.prompt_id for task in world.tasks}
    expected = [prompt_of[world.tasks[i].id] for i in (1, 3, 3, 2)]
    made_tasks = [db.get(Task, task_id) for task_id in done.task_ids]
    assert [task.prompt_id for task in made_tasks] == expected
    assert {(task.overlap, task.retired_at) for task in made_tasks} == {(3, None)}

    again = queue_audit_pairs(db, world.project.id, world.reward.id, world.review.id, acting=ann)
    assert (again.created, again.skipped, again.task_ids) == (0, 4, [])
    assert len(live_tasks(db, world.review)) == 4


def test_chosen_pairs_skip_a_live_task_but_not_a_retired_one(
    db: Session, world: AuditWorld
) -> None:
    r, ann = world.r, world.labelers[0]
    first = queue_audit_pairs(
        db,
        world.project.id,
        world.reward.id,
        world.review.id,
        [PairRef(winner_response_id=r["a1"], loser_response_id=r["b1"])],
        acting=ann,
    )
    assert (first.created, first.skipped) == (1, 0)
    # The same pair either way round, twice in one request, beside a new one.
    chosen = [
        PairRef(winner_response_id=r["b1"], loser_response_id=r["a1"]),
        PairRef(winner_response_id=r["a5"], loser_response_id=r["b5"]),
        PairRef(winner_response_id=r["b5"], loser_response_id=r["a5"]),
    ]
    second = queue_audit_pairs(
        db, world.project.id, world.reward.id, world.review.id, chosen, acting=ann
    )
    assert (second.created, second.skipped) == (1, 2)
    assert live_tasks(db, world.review)[second.task_ids[0]] == [r["a5"], r["b5"]]

    db.get(Task, first.task_ids[0]).retired_at = utcnow()
    db.commit()
    third = queue_audit_pairs(
        db, world.project.id, world.reward.id, world.review.id, chosen[:1], acting=ann
    )
    assert (third.created, third.skipped) == (1, 0)


def test_a_pair_judged_again_is_judged_by_its_latest_task(db: Session, world: AuditWorld) -> None:
    """T2 queued again, and this time all three put b2 first: the model now agrees there."""
    ann = world.labelers[0]
    r = world.r
    pair = PairRef(winner_response_id=r["a2"], loser_response_id=r["b2"])
    done = queue_audit_pairs(
        db, world.project.id, world.reward.id, world.review.id, [pair], acting=ann
    )
    again = db.get(Task, done.task_ids[0])
    for labeler in world.labelers:
        _judge(db, again, labeler, [r["b2"], r["a2"]])
    db.commit()
    audit = reward_audit(db, world.project.id, world.reward.id)
    assert (audit.judged_pairs, audit.checked_pairs, audit.agreeing_pairs) == (7, 6, 3)
    assert [p.winner_response_id for p in audit.disagreements] == [r["b4"], r["a4"], r["b3"]]


def count_tasks(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Task))


@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("policy", "model_id", "policy model"),
        ("foreign queue", "queue_id", "is not in project"),
        ("demonstration queue", "queue_id", "demonstration queue"),
        ("two prompts", "pairs.1", "different prompts"),
        ("same response", "pairs.1", "two different responses"),
        ("other project", "pairs.1", "not in project"),
    ],
)
def test_bad_requeues_are_refused_and_create_nothing(
    db: Session, world: AuditWorld, case: str, field: str, message: str
) -> None:
    r = world.r
    model, queue = world.reward.id, world.review.id
    good = PairRef(winner_response_id=r["a1"], loser_response_id=r["b1"])
    pairs: list[PairRef] | None = None
    if case == "policy":
        model = world.policy.id
    elif case == "foreign queue":
        queue = world.foreign.id
    elif case == "demonstration queue":
        queue = world.demos.id
    elif case == "two prompts":
        pairs = [good, PairRef(winner_response_id=r["a1"], loser_response_id=r["a2"])]
    elif case == "same response":
        pairs = [good, PairRef(winner_response_id=r["a1"], loser_response_id=r["a1"])]
    else:
        stranger = Prompt(
            project_id=world.other.id, messages=[], source="test", content_hash="f" * 64
        )
        db.add(stranger)
        db.flush()
        outside = Response(prompt_id=stranger.id, content="x", source=ResponseSource.imported)
        db.add(outside)
        db.commit()
        pairs = [good, PairRef(winner_response_id=outside.id, loser_response_id=r["a1"])]
    before = count_tasks(db)
    with pytest.raises(InvalidInput, match=message) as refused:
        queue_audit_pairs(db, world.project.id, model, queue, pairs, acting=world.labelers[0])
    assert refused.value.field == field
    assert count_tasks(db) == before
