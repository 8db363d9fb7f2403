"""app.services.overview: what each role sees on its home page."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    Demonstration,
    LabelSource,
    Model,
    ModelRole,
    Project,
    Prompt,
    Queue,
    QueueKind,
    QueueLabeler,
    Role,
    Run,
    RunKind,
    RunStatus,
    User,
)
from app.services.overview import QueueLine, overview_for, queues_for_labeler
from tests.conftest import make_user


def make_project(db: Session, name: str, *, archived: bool = False) -> Project:
    project = Project(name=name, label_schema={"flags": []}, is_archived=archived)
    db.add(project)
    db.flush()
    return project


def make_queue(db: Session, project: Project, name: str, **fields: Any) -> Queue:
    queue = Queue(project_id=project.id, name=name, kind=QueueKind.comparison, **fields)
    db.add(queue)
    db.flush()
    return queue


def make_prompt(db: Session, project: Project) -> Prompt:
    prompt = Prompt(project_id=project.id, messages=[], source="test", content_hash="0" * 64)
    db.add(prompt)
    db.flush()
    return prompt


def names(lines: list[QueueLine]) -> list[str]:
    return [line.queue.name for line in lines]


# --- counts -----------------------------------------------------------------------------------


def test_admin_sees_active_users_per_role_and_inactive_count(db: Session, admin: User) -> None:
    make_user(db, "l1")
    make_user(db, "l2")
    make_user(db, "l3", active=False)
    make_user(db, "r1", Role.researcher, active=False)
    overview = overview_for(db, admin)
    assert overview.users_by_role == {"labeler": 2, "admin": 1, "researcher": 0}
    assert overview.inactive_users == 2


def test_admin_and_researcher_see_runs_per_status_and_models(
    db: Session, admin: User, researcher: User
) -> None:
    project = make_project(db, "P")
    for status in (RunStatus.queued, RunStatus.queued, RunStatus.failed):
        db.add(Run(project_id=project.id, kind=RunKind.sft, base_model_ref="gpt2", status=status))
    db.add(Model(name="m", role=ModelRole.policy, hub_name="gpt2"))
    db.flush()
    for user in (admin, researcher):
        overview = overview_for(db, user)
        assert overview.runs_by_status == {
            "queued": 2,
            "running": 0,
            "succeeded": 0,
            "failed": 1,
            "cancelled": 0,
        }
        assert [run.status for run in overview.recent_runs] == [
            RunStatus.failed,
            RunStatus.queued,
            RunStatus.queued,
        ]
        assert overview.models == 1
    # Researchers see runs, not the user counts.
    assert overview_for(db, researcher).users_by_role == {}
    assert overview_for(db, researcher).inactive_users == 0


def test_recent_runs_are_the_last_ten(db: Session, researcher: User) -> None:
    project = make_project(db, "P")
    runs = [Run(project_id=project.id, kind=RunKind.dpo, base_model_ref="m") for _ in range(12)]
    db.add_all(runs)
    db.flush()
    overview = overview_for(db, researcher)
    assert [run.id for run in overview.recent_runs] == [run.id for run in reversed(runs)][:10]
    assert overview.runs_by_status["queued"] == 12


def test_labeler_sees_only_their_own_label_counts(
    db: Session, labeler: User, researcher: User
) -> None:
    project = make_project(db, "P")
    prompt = make_prompt(db, project)
    mine = {"prompt_id": prompt.id, "source": LabelSource.labeler, "labeler_id": labeler.id}
    theirs = {"prompt_id": prompt.id, "source": LabelSource.labeler, "labeler_id": researcher.id}
    db.add_all(
        [
            Demonstration(**mine, messages=[{"role": "assistant", "content": "a"}]),
            Demonstration(**mine, messages=[{"role": "assistant", "content": "b"}]),
            Demonstration(**theirs, messages=[{"role": "assistant", "content": "c"}]),
            Comparison(**mine),
            Comparison(**theirs),
            Comparison(prompt_id=prompt.id, source=LabelSource.imported),
        ]
    )
    db.flush()
    overview = overview_for(db, labeler)
    assert (overview.my_demonstrations, overview.my_comparisons) == (2, 1)
    assert overview.users_by_role == {}
    assert overview.runs_by_status == {}
    assert overview.recent_runs == []
    assert overview.models == 0


def test_projects_listed_are_live_ones_by_name(db: Session, labeler: User) -> None:
    make_project(db, "Zeta")
    make_project(db, "Alpha")
    make_project(db, "Old", archived=True)
    assert [project.name for project in overview_for(db, labeler).projects] == ["Alpha", "Zeta"]


# --- queues a labeler may work on -------------------------------------------------------------


def test_open_queues_are_visible_to_every_labeler_by_priority_then_name(
    db: Session, labeler: User
) -> None:
    project = make_project(db, "P")
    make_queue(db, project, "b-low")
    make_queue(db, project, "a-low")
    make_queue(db, project, "urgent", priority=5)
    lines = queues_for_labeler(db, labeler)
    assert names(lines) == ["urgent", "a-low", "b-low"]
    assert {line.project.name for line in lines} == {"P"}


def test_closed_queue_needs_membership(db: Session, labeler: User) -> None:
    project = make_project(db, "P")
    closed = make_queue(db, project, "invited", open_to_all=False)
    other = make_user(db, "other")
    assert names(queues_for_labeler(db, labeler)) == []

    db.add(QueueLabeler(queue_id=closed.id, user_id=labeler.id))
    db.flush()
    assert names(queues_for_labeler(db, labeler)) == ["invited"]
    assert names(queues_for_labeler(db, other)) == []


def test_paused_queues_and_archived_projects_are_hidden(db: Session, labeler: User) -> None:
    live = make_project(db, "Live")
    archived = make_project(db, "Archived", archived=True)
    make_queue(db, live, "running")
    make_queue(db, live, "paused", is_paused=True)
    member_but_paused = make_queue(db, live, "paused-invited", is_paused=True, open_to_all=False)
    make_queue(db, archived, "in-archive")
    db.add(QueueLabeler(queue_id=member_but_paused.id, user_id=labeler.id))
    db.flush()
    assert names(queues_for_labeler(db, labeler)) == ["running"]
    assert names(overview_for(db, labeler).queues) == ["running"]
