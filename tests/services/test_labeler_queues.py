"""app.services.overview.labeler_queues: the queues a labeler may work on, with what is left for
them, what they did today and what they hold."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.models import Project, Role, User
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, SkipSubmit
from app.services import assignments, queues
from app.services.overview import LabelerQueue, labeler_queues
from tests.conftest import make_user
from tests.factories import make_comparison_tasks, make_project, make_queue


def summary(lines: list[LabelerQueue]) -> list[tuple[str, str, int, int, list[int]]]:
    return [
        (line.queue.name, line.project.name, line.left, line.done_today, line.held)
        for line in lines
    ]


def judge_first(db: Session, queue_id: int, labeler: User, now: datetime) -> int:
    assignment = assignments.lease_next_task(db, queue_id, labeler, now=now)
    assert assignment is not None
    first, second = assignment.response_order or []
    assignments.submit_comparison(
        db,
        assignment.id,
        labeler,
        ComparisonSubmit(
            items=[
                {"response_id": first, "rank": 1, "score": 6},
                {"response_id": second, "rank": 2, "score": 2},
            ]
        ),
        now=now,
    )
    return assignment.task_id


def test_left_done_today_and_held_per_queue(db: Session, labeler: User) -> None:
    omar, tess = make_user(db, "omar"), make_user(db, "tess")
    project = make_project(db, "Helpful")
    main = make_queue(db, project, name="main", overlap=2, max_overlap=2)
    t1, t2, t3, t4, _, t6 = make_comparison_tasks(db, main, project, 6, responses_each=2)
    listed = make_queue(db, project, name="listed", priority=5, open_to_all=False)
    make_comparison_tasks(db, listed, project, 1, responses_each=2)
    queues.set_labelers(db, listed.id, [labeler.id])
    make_queue(db, project, name="not listed", open_to_all=False)
    make_queue(db, project, name="paused", is_paused=True)
    archived: Project = make_project(db, "Old")
    archived.is_archived = True
    make_queue(db, archived, name="archived")
    t6.retired_at = utcnow()
    db.commit()

    now = utcnow()
    assert judge_first(db, main.id, labeler, now - timedelta(days=1)) == t1.id
    assert judge_first(db, main.id, labeler, now) == t2.id
    skipped = assignments.lease_next_task(db, main.id, labeler, now=now)
    assert skipped is not None and skipped.task_id == t3.id
    assignments.skip_assignment(db, skipped.id, labeler, SkipSubmit(reason="broken_task"))
    held = assignments.lease_next_task(db, main.id, labeler, now=now)
    assert held is not None and held.task_id == t4.id
    # Overlap 2: t1 and t2 fill up with one more labeler each.
    taken = {}
    for other, task in ((omar, t1), (tess, t2)):
        lease = assignments.lease_next_task(db, main.id, other, now=now)
        assert lease is not None and lease.task_id == task.id
        taken[other.username] = lease.id

    # Left for her: only t5 (t1, t2 done, t3 skipped, t4 held, t6 retired).
    assert summary(labeler_queues(db, labeler, now=now)) == [
        ("listed", "Helpful", 1, 0, []),
        ("main", "Helpful", 1, 1, [held.id]),
    ]
    # Two days on: every lease has expired, so t4 is hers to take again; nothing done that day.
    assert summary(labeler_queues(db, labeler, now=now + timedelta(days=2))) == [
        ("listed", "Helpful", 1, 0, []),
        ("main", "Helpful", 2, 0, []),
    ]
    # Omar holds t1 and may take t3 to t5 (one slot each is free); "listed" does not list him.
    assert summary(labeler_queues(db, omar, now=now)) == [
        ("main", "Helpful", 3, 0, [taken["omar"]])
    ]


def test_other_roles_and_deactivated_labelers_get_no_queues(db: Session) -> None:
    project = make_project(db)
    queue = make_queue(db, project)
    make_comparison_tasks(db, queue, project, 1)
    for user in (
        make_user(db, "boss", Role.admin),
        make_user(db, "rhea", Role.researcher),
        make_user(db, "gone", active=False),
    ):
        assert labeler_queues(db, user) == []
    assert summary(labeler_queues(db, make_user(db, "new"))) == [
        ("comparison queue", "Helpful", 1, 0, [])
    ]
