"""Many labelers lease and submit at once: no task beyond its overlap, none twice to one
labeler, no submission lost. PostgreSQL exercises the row locks (SQLAlchemy drops FOR UPDATE on
SQLite, where the serialised fallback is checked instead). Each run has a database of its own."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.db import make_engine, session_factory
from app.errors import Conflict
from app.models import Assignment, AssignmentStatus, Comparison, Pair, Role, User
from app.schemas.labeling import ComparisonSubmit
from app.services import assignments
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue

pytestmark = pytest.mark.slow

LABELERS = 16
TASKS = 40
OVERLAP = 3


def test_concurrent_labelers_never_over_lease_and_lose_nothing(own_database: str) -> None:
    # SQLite runs one writer at a time: fewer threads keep each wait well inside its busy
    # timeout on a loaded machine, and still interleave leases and submits.
    labelers = LABELERS if own_database.startswith("postgresql") else 6
    engine = make_engine(own_database, pool_size=labelers + 2, max_overflow=0)
    sessions = session_factory(engine)
    with sessions() as db:
        project = make_project(db)
        queue = make_queue(db, project, overlap=OVERLAP, max_overlap=OVERLAP, max_active_leases=2)
        make_comparison_tasks(db, queue, project, TASKS)
        labeler_ids = [
            make_user(db, f"labeler{index:02d}", Role.labeler).id for index in range(labelers)
        ]
        queue_id = queue.id

    accepted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(labelers)

    def work(labeler_id: int) -> None:
        rng = random.Random(labeler_id)
        try:
            with sessions() as db:
                labeler = db.get(User, labeler_id)
                assert labeler is not None
                # End the read transaction before waiting: on SQLite it holds the write lock.
                db.rollback()
                start.wait()
                while True:
                    try:
                        assignment = assignments.lease_next_task(db, queue_id, labeler)
                    except Conflict:
                        continue
                    if assignment is None:
                        return
                    order = assignment.response_order or []
                    ranks = list(range(1, len(order) + 1))
                    rng.shuffle(ranks)
                    data = ComparisonSubmit(
                        items=[
                            {"response_id": r, "rank": k, "score": 8 - k}
                            for r, k in zip(order, ranks, strict=True)
                        ],
                        idempotency_key=f"submit-{assignment.id:08d}",
                    )
                    done = assignments.submit_comparison(db, assignment.id, labeler, data)
                    # A client that lost the answer retries with the same key.
                    if rng.random() < 0.3:
                        retried = assignments.submit_comparison(db, assignment.id, labeler, data)
                        assert (retried.label_id, retried.replayed) == (done.label_id, True)
                    with lock:
                        accepted.append(done.label_id)
        except BaseException as error:  # surfaced below, with the thread's traceback
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=work, args=(labeler_id,)) for labeler_id in labeler_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "a labeler hung"
    assert errors == []

    with sessions() as db:
        per_task = Counter(
            db.scalars(
                select(Assignment.task_id).where(Assignment.status == AssignmentStatus.submitted)
            )
        )
        per_task_labeler = Counter(
            db.execute(
                select(Assignment.task_id, Assignment.labeler_id).where(
                    Assignment.status.in_([AssignmentStatus.submitted, AssignmentStatus.active])
                )
            ).all()
        )
        comparison_ids = set(db.scalars(select(Comparison.id)))
        pair_count = db.scalar(select(func.count()).select_from(Pair))
    engine.dispose()

    assert len(per_task) == TASKS
    assert max(per_task.values()) <= OVERLAP, "a task was leased beyond its overlap"
    assert set(per_task.values()) == {OVERLAP}, "labelers stopped while work was left"
    assert max(per_task_labeler.values()) == 1, "a labeler got a task twice"
    assert len(accepted) == TASKS * OVERLAP
    assert set(accepted) == comparison_ids, "an accepted submission is missing"
    assert pair_count == TASKS * OVERLAP * 6
