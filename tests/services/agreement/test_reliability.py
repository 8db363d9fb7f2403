"""The per-project reliability cache behind task consensus (app/services/agreement/reliability.py).

The world is tests/services/agreement/world.py; reliability weights there are worked out in
test_consensus.py (ann 289/729, bob 289/594, cat 235/486, dan 127/729).
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest import approx
from sqlalchemy.orm import Session

from app.models import LabelSource, QueueKind
from app.services.agreement import service
from app.services.agreement.reliability import CACHE, Reliability, ReliabilityCache, fingerprint
from tests.services.agreement.world import (
    World,
    build_world,
    day,
    judge,
    make_queue,
    make_task,
)


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def pair(winner: int, loser: int, labelers: int, support: float) -> dict[str, Any]:
    return {
        "winner_response_id": winner,
        "loser_response_id": loser,
        "labelers": labelers,
        "support": approx(support),
        "weight": approx(2 * support - 1),
    }


def test_a_second_consensus_reuses_the_reliability(db: Session, world: World) -> None:
    first = service.task_consensus(db, [world.t1.id])
    assert (CACHE.computed, CACHE.reused, CACHE.fingerprinted) == (1, 0, 1)

    again = service.task_consensus(db, [world.t1.id])
    other_task = service.task_consensus(db, [world.t2.id])

    # Nothing new anywhere: not even the project's fingerprint is taken again.
    assert (CACHE.computed, CACHE.reused, CACHE.fingerprinted) == (1, 2, 1)
    assert again == first
    # Read alone with the cached weights, T2 gets what it gets among all tasks.
    CACHE.clear()
    assert service.task_consensus(db, [world.t1.id, world.t2.id])[1] == other_task[0]


def test_a_new_comparison_invalidates_the_reliability(db: Session, world: World) -> None:
    r = world.r
    before = service.task_consensus(db, [world.t3.id])[0]
    assert (before.support, [p.support for p in before.pairs]) == (1.0, [1.0, 1.0, 1.0])

    # dan reverses T3 (r10 > r9 > r8). Overall agreement becomes 10 of 32: T3 adds bob-dan
    # 0 of 3 and cat-dan 0 of 2 (cat tied r9 and r10). Reliability (agreeing + 10 * 5/16) /
    # (comparisons + 10): ann 10.125/27 = 3/8, bob (7 + 3.125)/(15 + 10) = 81/200,
    # cat (5 + 3.125)/(10 + 10) = 13/32, dan (1 + 3.125)/(22 + 10) = 33/256.
    judge(db, world.t3, world.dan, {r[8]: 3, r[9]: 2, r[10]: 1}, {}, version=world.v2, at=day(4))
    db.commit()
    after = service.task_consensus(db, [world.t3.id])[0]

    assert (CACHE.computed, CACHE.reused, CACHE.fingerprinted) == (2, 0, 2)
    wb, wc, wd = 81 / 200, 13 / 32, 33 / 256
    assert after.model_dump() == {
        "task_id": world.t3.id,
        "comparisons": 3,
        "ranking": [[r[8]], [r[9]], [r[10]]],
        # (8,9) and (8,10): bob and cat for, dan against; (9,10): bob for, dan against.
        "support": approx((2 * (wb + wc) + wb) / (2 * (wb + wc + wd) + wb + wd)),
        "pairs": [
            pair(r[8], r[9], 3, (wb + wc) / (wb + wc + wd)),
            pair(r[8], r[10], 3, (wb + wc) / (wb + wc + wd)),
            pair(r[9], r[10], 2, wb / (wb + wd)),
        ],
    }


def test_comparisons_that_do_not_count_leave_the_reliability_cached(
    db: Session, world: World
) -> None:
    r = world.r
    service.task_consensus(db, [world.t1.id])
    key = fingerprint(db, world.project.id)

    reversed_ranks = {r[1]: 4, r[2]: 3, r[3]: 2, r[4]: 1}
    judge(
        db, world.t1, None, reversed_ranks, {}, version=None, at=day(6), source=LabelSource.imported
    )
    judge(db, world.t1, world.bob, {r[1]: None}, {}, version=None, at=day(6), all_unacceptable=True)
    elsewhere, (r1, r2) = make_task(
        db, make_queue(db, world.other, "more", QueueKind.comparison), 2
    )
    judge(db, elsewhere, world.ann, {r1: 1, r2: 2}, {}, version=None, at=day(6))
    db.commit()
    service.task_consensus(db, [world.t1.id])

    # Something is new, so the project's fingerprint is taken: it has not changed.
    assert fingerprint(db, world.project.id) == key
    assert (CACHE.computed, CACHE.reused, CACHE.fingerprinted) == (1, 1, 2)


def test_the_cache_keeps_the_most_recently_used_projects() -> None:
    cache = ReliabilityCache(projects=2)
    made: list[int] = []

    def get(project: int, everywhere: str, key: str = "k") -> Reliability:
        def compute() -> Reliability:
            made.append(project)
            return {project: 1.0}

        return cache.lookup(project, (everywhere,), lambda: (key,), compute)

    assert get(1, "a") == {1: 1.0}
    get(2, "a")
    get(1, "a")  # reused: 1 is now the most recent
    get(3, "a")  # evicts 2
    get(1, "a")
    get(2, "a")
    get(1, "b")  # something new elsewhere, the same project key: reused
    get(1, "c", key="other")  # another project key: computed again

    assert made == [1, 2, 3, 2, 1]
    # A project key is taken unless nothing is new since the entry was stored.
    assert (cache.computed, cache.reused, cache.fingerprinted) == (5, 3, 6)
    # `get` goes by the project key alone.
    assert cache.get(1, ("other",), lambda: {9: 0.5}) == {1: 1.0}
    assert cache.get(1, ("new",), lambda: {9: 0.5}) == {9: 0.5}
    assert (cache.computed, cache.reused, cache.fingerprinted) == (6, 4, 8)
