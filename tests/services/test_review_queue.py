"""The review queue: unreviewed labeler comparisons picked by their task's stored agreement, a
gold miss or a fast time, in SQL, keyset-paged oldest first, with thresholds as parameters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Comparison, LabelSource, Project, Queue, Role, Task, TaskResponse, User
from app.schemas.reviews import ReviewCreate
from app.services import reviews
from app.services.review_queue import ReviewThresholds, review_queue
from tests.conftest import make_user
from tests.factories import judge_task, make_comparison_tasks, make_project, make_queue


@dataclass
class Judged:
    project: Project
    # Task L: a and b agree, c ranks the other way in 3 s (agreement 1/3).
    la: int
    lb: int
    lc: int
    # Task H: a and b agree (1.0); b took 4 s.
    ha: int
    hb: int
    # Gold tasks: a hits the answer of one, b misses that of the other.
    hit: int
    miss: int


def _task(db: Session, project: Project, name: str, overlap: int) -> tuple[Task, list[int]]:
    queue = make_queue(db, project, name=name, overlap=overlap)
    (task,) = make_comparison_tasks(db, queue, project, 1, responses_each=3)
    ids = sorted(
        db.scalars(select(TaskResponse.response_id).where(TaskResponse.task_id == task.id))
    )
    return task, ids


def _judge(db: Session, task: Task, labeler: User, order: list[int], seconds: float = 30) -> int:
    queue = db.get(Queue, task.queue_id)
    assert queue is not None
    return judge_task(db, queue, labeler, order, seconds=seconds)


@pytest.fixture
def judged(db: Session) -> Judged:
    project = make_project(db)
    a, b, c = (make_user(db, name, Role.labeler) for name in ("ann", "bob", "cy"))
    low, low_ids = _task(db, project, "low", 3)
    high, high_ids = _task(db, project, "high", 2)
    gold_hit, hit_ids = _task(db, project, "gold hit", 1)
    gold_miss, miss_ids = _task(db, project, "gold miss", 1)
    for task, ids in ((gold_hit, hit_ids), (gold_miss, miss_ids)):
        task.is_gold = True
        task.gold_answer = {"ranking": [[ids[0]], [ids[1], ids[2]]]}
    db.commit()
    la = _judge(db, low, a, low_ids)
    lb = _judge(db, low, b, low_ids)
    lc = _judge(db, low, c, low_ids[::-1], seconds=3)
    ha = _judge(db, high, a, high_ids)
    hb = _judge(db, high, b, high_ids, seconds=4)
    hit = _judge(db, gold_hit, a, hit_ids)
    miss = _judge(db, gold_miss, b, [miss_ids[1], miss_ids[0], miss_ids[2]])
    # Never listed: another project's fast label, and an imported comparison.
    elsewhere = make_project(db, "Elsewhere")
    stray, stray_ids = _task(db, elsewhere, "stray", 1)
    _judge(db, stray, a, stray_ids, seconds=1)
    db.add(Comparison(prompt_id=low.prompt_id, source=LabelSource.imported, comment=""))
    db.commit()
    return Judged(project, la, lb, lc, ha, hb, hit, miss)


def picked(
    db: Session, judged: Judged, thresholds: ReviewThresholds = ReviewThresholds(), **page: int
) -> list[tuple[int, list[str]]]:
    found = review_queue(db, judged.project.id, thresholds, **page)  # type: ignore[arg-type]
    return [(item.comparison_id, item.reasons) for item in found.items]


def test_the_default_thresholds_pick_each_reason(db: Session, judged: Judged) -> None:
    j = judged
    assert picked(db, j) == [
        (j.la, ["low agreement"]),
        (j.lb, ["low agreement"]),
        (j.lc, ["low agreement", "fast"]),
        (j.hb, ["fast"]),
        (j.miss, ["gold miss"]),
    ]
    item = review_queue(db, j.project.id).items[2]
    assert (item.labeler, item.time_spent_seconds, item.task_agreement) == ("cy", 3.0, 1 / 3)


def test_each_threshold_is_a_parameter_and_zero_turns_it_off(db: Session, judged: Judged) -> None:
    j = judged
    no_agreement = ReviewThresholds(agreement_below=0)
    assert picked(db, j, no_agreement) == [
        (j.lc, ["fast"]),
        (j.hb, ["fast"]),
        (j.miss, ["gold miss"]),
    ]
    agreement_only = ReviewThresholds(agreement_below=0.5, faster_than=0, gold_misses=False)
    assert picked(db, j, agreement_only) == [(c, ["low agreement"]) for c in (j.la, j.lb, j.lc)]
    # 1/3 is not below 0.3; 30 s is not under 30 s, but 4 s and 3 s are.
    assert picked(db, j, ReviewThresholds(0.3, 30, False)) == [(j.lc, ["fast"]), (j.hb, ["fast"])]
    assert picked(db, j, ReviewThresholds(0, 0, False)) == []


def test_pages_follow_by_keyset(db: Session, judged: Judged) -> None:
    j = judged
    seen = []
    cursor = None
    while True:
        page = review_queue(db, j.project.id, cursor=cursor, limit=2)
        seen.append([item.comparison_id for item in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [[j.la, j.lb], [j.lc, j.hb], [j.miss]]
    # A gold task judged right is read past, not shown: the last page is the gold miss alone.
    last = review_queue(db, j.project.id, cursor=j.hb, limit=1)
    assert ([item.comparison_id for item in last.items], last.next_cursor) == ([j.miss], None)


def test_a_reviewed_label_leaves_the_queue(db: Session, judged: Judged, admin: User) -> None:
    j = judged
    reviews.review_comparison(db, j.la, admin, ReviewCreate(verdict="accepted"))
    reviews.review_comparison(
        db, j.miss, admin, ReviewCreate(verdict="rejected", reason="missed the gold answer")
    )
    assert [found for found, _ in picked(db, j)] == [j.lb, j.lc, j.hb]


@pytest.mark.parametrize(
    ("thresholds", "page", "field"),
    [
        (ReviewThresholds(agreement_below=1.5), {}, "agreement_below"),
        (ReviewThresholds(agreement_below=float("nan")), {}, "agreement_below"),
        (ReviewThresholds(faster_than=-1), {}, "faster_than"),
        (ReviewThresholds(faster_than=10**6), {}, "faster_than"),
        (ReviewThresholds(), {"cursor": 0}, "cursor"),
        (ReviewThresholds(), {"limit": 0}, "limit"),
        (ReviewThresholds(), {"limit": 201}, "limit"),
    ],
)
def test_bad_thresholds_name_their_field(
    db: Session, judged: Judged, thresholds: ReviewThresholds, page: dict[str, int], field: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        review_queue(db, judged.project.id, thresholds, **page)  # type: ignore[arg-type]
    assert raised.value.field == field
