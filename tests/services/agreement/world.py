"""A hand-made project whose every agreement figure is worked out below, for DB-backed tests.

Labelers ann, bob, cat and dan; dan always reverses the others. Ranks as written are
(response: rank), 1 best; "=" marks a tie. Scores are the 1-7 scores.

  T1 (queue chat, guideline v1), responses r1 r2 r3 r4
    ann  r1 > r2 > r3 > r4    ranks 1 2 3 4   scores 7 5 3 1   day 1
    bob  r1 > r2 = r3 > r4    ranks 1 2 2 3   scores 6 4 4 2   day 1
    dan  r4 > r3 > r2 > r1    ranks 4 3 2 1   scores 1 3 5 7   day 2
    not counted: ann's older judgement (day 0, reversed: her day-1 one replaces it), an
    import (no labeler), cat's "all unacceptable" (no ranking).
  T2 (queue chat; ann and dan under v2, cat under v1), responses r5 r6 r7
    ann  r5 > r6 > r7         ranks 1 2 3     scores 6 5 2     day 2
    cat  r6 > r5 > r7         ranks 2 1 3     scores 5 6 2     day 2
    dan  r7 > r6 > r5         ranks 3 2 1     scores 2 4 6     day 2
  T3 (queue gold, v2, gold answer r8 > r9 > r10), responses r8 r9 r10
    bob  r8 > r9 > r10        ranks 1 2 3     scores 7 4 1     day 1
    cat  r8 > r9 = r10        ranks 1 2 2     scores 6 3 -     day 3 (no score for r10)

Pairwise agreement, response pair by response pair (labelers who ordered it; ties left out):
  T1 (1,2) (1,3) (1,4) (2,4) (3,4): ann, bob for the lower id, dan against: 1 of 3 agree, each
     (2,3): ann vs dan (bob tied): 0 of 1                               T1: 5 of 16
  T2 (5,6): ann vs cat, dan: 1 of 3; (5,7), (6,7): ann, cat vs dan: 1 of 3  T2: 3 of 9
  T3 (8,9), (8,10): bob, cat: 1 of 1; (9,10): cat tied, only bob           T3: 2 of 2
  overall 10 of 27 on 11 response pairs; queue chat 8/25, gold 2/2;
  v1 (T1 only; cat is alone on T2 under v1) 5/16, v2 (T2 ann vs dan 0/3, T3 2/2) 2/5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    GuidelineVersion,
    LabelSource,
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

DAY0 = datetime(2024, 4, 30, 9, 0, tzinfo=UTC)


def day(number: int, hour: int = 10) -> datetime:
    return DAY0 + timedelta(days=number, hours=hour - 9)


@dataclass
class World:
    project: Project
    other: Project
    v1: GuidelineVersion
    v2: GuidelineVersion
    chat: Queue
    gold: Queue
    demos: Queue
    ann: User
    bob: User
    cat: User
    dan: User
    t1: Task
    t2: Task
    t3: Task
    r: dict[int, int]  # r[1] .. r[10]: response ids, ascending


def make_labeler(db: Session, username: str) -> User:
    """A labeler who never logs in (no password hashing: the world is built per test)."""
    user = User(username=username, role=Role.labeler, password_hash="not-a-hash")
    db.add(user)
    db.flush()
    return user


def make_project(db: Session, name: str) -> Project:
    project = Project(name=name, label_schema={"flags": []})
    db.add(project)
    db.flush()
    return project


def make_queue(db: Session, project: Project, name: str, kind: QueueKind) -> Queue:
    queue = Queue(project_id=project.id, name=name, kind=kind, overlap=3, max_overlap=3)
    db.add(queue)
    db.flush()
    return queue


def make_task(
    db: Session, queue: Queue, responses: int, *, gold: list[list[int]] | None = None
) -> tuple[Task, list[int]]:
    """A task with `responses` fresh responses (ids ascending); gold given as positions."""
    prompt = Prompt(
        project_id=queue.project_id,
        messages=[{"role": "user", "content": "hi"}],
        source="test",
        content_hash="0" * 64,
    )
    db.add(prompt)
    db.flush()
    ids = []
    for number in range(responses):
        response = Response(
            prompt_id=prompt.id, content=f"answer {number}", source=ResponseSource.imported
        )
        db.add(response)
        db.flush()
        ids.append(response.id)
    task = Task(queue_id=queue.id, prompt_id=prompt.id, overlap=3, is_gold=gold is not None)
    if gold is not None:
        task.gold_answer = {"ranking": [[ids[i] for i in group] for group in gold]}
    db.add(task)
    db.flush()
    for position, response_id in enumerate(ids):
        db.add(TaskResponse(task_id=task.id, response_id=response_id, position=position))
    db.flush()
    return task, ids


def judge(
    db: Session,
    task: Task,
    labeler: User | None,
    ranks: dict[int, int | None],
    scores: dict[int, int | None],
    *,
    version: GuidelineVersion | None,
    at: datetime,
    source: LabelSource = LabelSource.labeler,
    all_unacceptable: bool = False,
) -> Comparison:
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=source,
        guideline_version_id=version.id if version else None,
        all_unacceptable=all_unacceptable,
        created_at=at,
    )
    db.add(comparison)
    db.flush()
    for response_id, rank in ranks.items():
        db.add(
            ComparisonItem(
                comparison_id=comparison.id,
                response_id=response_id,
                rank=rank,
                score=scores.get(response_id),
            )
        )
    db.flush()
    return comparison


def _by(ids: list[int], values: list[int | None]) -> dict[int, int | None]:
    return dict(zip(ids, values, strict=True))


def build_world(db: Session) -> World:
    project = make_project(db, "Helpful chat")
    other = make_project(db, "Elsewhere")
    v1 = GuidelineVersion(project_id=project.id, version=1, body="Be helpful.")
    v2 = GuidelineVersion(project_id=project.id, version=2, body="Be helpful and brief.")
    db.add_all([v1, v2])
    db.flush()
    chat = make_queue(db, project, "chat", QueueKind.comparison)
    gold = make_queue(db, project, "gold", QueueKind.comparison)
    demos = make_queue(db, project, "demos", QueueKind.demonstration)
    ann, bob, cat, dan = (make_labeler(db, name) for name in ("ann", "bob", "cat", "dan"))

    t1, (r1, r2, r3, r4) = make_task(db, chat, 4)
    t2, (r5, r6, r7) = make_task(db, chat, 3)
    t3, (r8, r9, r10) = make_task(db, gold, 3, gold=[[0], [1], [2]])

    t1_ids, t2_ids, t3_ids = [r1, r2, r3, r4], [r5, r6, r7], [r8, r9, r10]
    counted = [
        # task, labeler, ranks, scores, version, when
        (t1, t1_ids, ann, [1, 2, 3, 4], [7, 5, 3, 1], v1, day(1)),
        (t1, t1_ids, bob, [1, 2, 2, 3], [6, 4, 4, 2], v1, day(1, 11)),
        (t1, t1_ids, dan, [4, 3, 2, 1], [1, 3, 5, 7], v1, day(2)),
        (t2, t2_ids, ann, [1, 2, 3], [6, 5, 2], v2, day(2, 12)),
        (t2, t2_ids, cat, [2, 1, 3], [5, 6, 2], v1, day(2, 13)),
        (t2, t2_ids, dan, [3, 2, 1], [2, 4, 6], v2, day(2, 14)),
        (t3, t3_ids, bob, [1, 2, 3], [7, 4, 1], v2, day(1, 15)),
        (t3, t3_ids, cat, [1, 2, 2], [6, 3, None], v2, day(3)),
    ]
    for task, ids, labeler, ranks, scores, version, at in counted:
        judge(db, task, labeler, _by(ids, ranks), _by(ids, scores), version=version, at=at)
    # Not counted: replaced by ann's later judgement, imported, all unacceptable.
    reversed_ranks = _by(t1_ids, [4, 3, 2, 1])
    judge(db, t1, ann, reversed_ranks, _by(t1_ids, [1, 2, 3, 4]), version=v1, at=day(0))
    judge(db, t1, None, reversed_ranks, {}, version=None, at=day(1), source=LabelSource.imported)
    unranked = _by(t1_ids, [None] * 4)
    judge(db, t1, cat, unranked, {}, version=v1, at=day(3), all_unacceptable=True)
    # Nor is another project's.
    elsewhere = make_queue(db, other, "chat", QueueKind.comparison)
    t9, t9_ids = make_task(db, elsewhere, 2)
    judge(db, t9, ann, _by(t9_ids, [2, 1]), {}, version=None, at=day(1))
    judge(db, t9, dan, _by(t9_ids, [1, 2]), {}, version=None, at=day(1))
    db.commit()
    r = dict(enumerate([r1, r2, r3, r4, r5, r6, r7, r8, r9, r10], start=1))
    return World(project, other, v1, v2, chat, gold, demos, ann, bob, cat, dan, t1, t2, t3, r)
