"""A hand-built project for snapshot tests, and a clean reliability cache per test.

Two labelers (ann, bob) and two guideline versions (ann judges under v1 in January, bob
under v2 in February):

- p1, task t1 (queue q1), responses a b c. ann: a=1, b=c=2 (a tie), scores 6 4 4, c flagged
  "hallucination". bob: b=1, a=2, c=3, scores 5 7 2. They agree on a>c and disagree on a/b.
- p2, gold task t2 (queue q2), responses a b. ann: a=1, b=2, scores 5 3.
- p3, task t3 (q1), responses a b. bob: all unacceptable, scores 2 1, a flagged "harmful".
- Demonstrations: ann on p1 (task in a demonstration queue, v1), bob on p3 (no task, v2).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    GuidelineVersion,
    LabelSource,
    Pair,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    Role,
    Task,
    User,
)
from app.services.agreement.reliability import CACHE
from tests.conftest import make_user
from tests.factories import (
    make_project,
    make_prompt,
    make_queue,
    make_responses,
    make_task,
    publish_guideline,
)

JANUARY = datetime(2024, 1, 10, 12, tzinfo=UTC)
FEBRUARY = datetime(2024, 2, 10, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_cached_reliability() -> Iterator[None]:
    CACHE.clear()
    yield
    CACHE.clear()


@dataclass
class World:
    project: Project
    researcher: User
    ann: User
    bob: User
    v1: GuidelineVersion
    v2: GuidelineVersion
    q1: Queue
    q2: Queue
    demo_queue: Queue
    prompts: list[Prompt]
    r1: list[Response]
    r2: list[Response]
    r3: list[Response]
    tasks: list[Task]
    comparisons: dict[str, Comparison]
    pairs: list[Pair]
    demonstrations: list[Demonstration]


def judge(
    db: Session,
    task: Task,
    labeler: User,
    version: GuidelineVersion,
    at: datetime,
    items: list[tuple[Response, int | None, int | None, list[str]]],
    *,
    all_unacceptable: bool = False,
) -> Comparison:
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id,
        source=LabelSource.labeler,
        guideline_version_id=version.id,
        all_unacceptable=all_unacceptable,
        created_at=at,
    )
    db.add(comparison)
    db.flush()
    for response, rank, score, flags in items:
        db.add(
            ComparisonItem(
                comparison_id=comparison.id,
                response_id=response.id,
                rank=rank,
                score=score,
                flags=flags,
            )
        )
    db.flush()
    return comparison


def pair(
    db: Session, comparison: Comparison, winner: Response, loser: Response, margin: float
) -> Pair:
    found = Pair(
        comparison_id=comparison.id,
        prompt_id=comparison.prompt_id,
        winner_response_id=winner.id,
        loser_response_id=loser.id,
        margin=margin,
    )
    db.add(found)
    db.flush()
    return found


@pytest.fixture
def world(db: Session) -> World:
    researcher = make_user(db, "rita", Role.researcher)
    ann = make_user(db, "ann")
    bob = make_user(db, "bob")
    project = make_project(db)
    v1 = publish_guideline(db, project, 1)
    v2 = publish_guideline(db, project, 2)
    q1 = make_queue(db, project, name="main")
    q2 = make_queue(db, project, name="gold")
    demo_queue = make_queue(db, project, QueueKind.demonstration, name="demos")
    p1 = make_prompt(db, project, "Prompt one")
    p2 = make_prompt(db, project, "Prompt two")
    p3 = make_prompt(db, project, "Prompt three")
    r1, r2, r3 = make_responses(db, p1, 3), make_responses(db, p2, 2), make_responses(db, p3, 2)
    t1 = make_task(db, q1, p1, r1)
    t2 = make_task(db, q2, p2, r2)
    t2.is_gold = True
    t3 = make_task(db, q1, p3, r3)
    demo_task = make_task(db, demo_queue, p1)
    a, b, c = r1
    ann1 = judge(
        db, t1, ann, v1, JANUARY, [(a, 1, 6, []), (b, 2, 4, []), (c, 2, 4, ["hallucination"])]
    )
    bob1 = judge(db, t1, bob, v2, FEBRUARY, [(a, 2, 5, []), (b, 1, 7, []), (c, 3, 2, [])])
    ann2 = judge(db, t2, ann, v1, JANUARY, [(r2[0], 1, 5, []), (r2[1], 2, 3, [])])
    bob3 = judge(
        db,
        t3,
        bob,
        v2,
        FEBRUARY,
        [(r3[0], None, 2, ["harmful"]), (r3[1], None, 1, [])],
        all_unacceptable=True,
    )
    pairs = [
        pair(db, ann1, a, b, 2.0),
        pair(db, ann1, a, c, 2.0),
        pair(db, bob1, b, a, 2.0),
        pair(db, bob1, b, c, 5.0),
        pair(db, bob1, a, c, 3.0),
        pair(db, ann2, r2[0], r2[1], 2.0),
    ]
    demonstrations = [
        Demonstration(
            task_id=demo_task.id,
            prompt_id=p1.id,
            labeler_id=ann.id,
            source=LabelSource.labeler,
            messages=[{"role": "assistant", "content": "Demo one"}],
            guideline_version_id=v1.id,
            created_at=JANUARY,
        ),
        Demonstration(
            prompt_id=p3.id,
            labeler_id=bob.id,
            source=LabelSource.labeler,
            messages=[
                {"role": "assistant", "content": "Demo three"},
                {"role": "user", "content": "More?"},
                {"role": "assistant", "content": "Yes."},
            ],
            guideline_version_id=v2.id,
            created_at=FEBRUARY,
        ),
    ]
    db.add_all(demonstrations)
    db.commit()
    return World(
        project=project,
        researcher=researcher,
        ann=ann,
        bob=bob,
        v1=v1,
        v2=v2,
        q1=q1,
        q2=q2,
        demo_queue=demo_queue,
        prompts=[p1, p2, p3],
        r1=r1,
        r2=r2,
        r3=r3,
        tasks=[t1, t2, t3],
        comparisons={"ann1": ann1, "bob1": bob1, "ann2": ann2, "bob3": bob3},
        pairs=pairs,
        demonstrations=demonstrations,
    )
