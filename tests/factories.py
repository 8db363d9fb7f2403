"""Small builders for labeling rows, for tests that need a queue of tasks quickly."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    GuidelineVersion,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Task,
    TaskResponse,
    User,
)
from app.models.base import utcnow
from app.schemas.projects import DEFAULT_FLAGS


def make_project(db: Session, name: str = "Helpful", creator: User | None = None) -> Project:
    project = Project(
        name=name,
        description="",
        label_schema={"flags": [flag.model_dump() for flag in DEFAULT_FLAGS]},
        created_by_id=creator.id if creator else None,
    )
    db.add(project)
    db.flush()
    return project


def make_prompt(db: Session, project: Project, text: str = "Write a haiku.") -> Prompt:
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": text}],
        source="test",
        content_hash=f"hash-{text}-{project.id}",
    )
    db.add(prompt)
    db.flush()
    return prompt


def make_responses(db: Session, prompt: Prompt, count: int) -> list[Response]:
    responses = [
        Response(
            prompt_id=prompt.id,
            content=f"answer {index}",
            source=ResponseSource.imported,
            source_name="test",
        )
        for index in range(count)
    ]
    db.add_all(responses)
    db.flush()
    return responses


def make_queue(
    db: Session, project: Project, kind: QueueKind = QueueKind.comparison, **settings: object
) -> Queue:
    values: dict[str, object] = {
        "name": f"{kind.value} queue",
        "overlap": 1,
        "max_overlap": settings.get("overlap", 1),
        "lease_seconds": 600,
        "max_active_leases": 3,
    }
    values.update(settings)
    queue = Queue(project_id=project.id, kind=kind, **values)
    db.add(queue)
    db.flush()
    return queue


def make_task(
    db: Session,
    queue: Queue,
    prompt: Prompt,
    responses: list[Response] | None = None,
    priority: int = 0,
) -> Task:
    task = Task(queue_id=queue.id, prompt_id=prompt.id, priority=priority, overlap=queue.overlap)
    db.add(task)
    db.flush()
    for position, response in enumerate(responses or []):
        db.add(TaskResponse(task_id=task.id, response_id=response.id, position=position))
    db.flush()
    return task


def make_comparison_tasks(
    db: Session, queue: Queue, project: Project, count: int, responses_each: int = 4
) -> list[Task]:
    tasks = []
    for index in range(count):
        prompt = make_prompt(db, project, f"prompt {index}")
        tasks.append(make_task(db, queue, prompt, make_responses(db, prompt, responses_each)))
    db.commit()
    return tasks


def publish_guideline(
    db: Session, project: Project, version: int, body: str = "Be kind."
) -> GuidelineVersion:
    guideline = GuidelineVersion(
        project_id=project.id, version=version, body=body, published_at=utcnow()
    )
    db.add(guideline)
    db.commit()
    return guideline


def judge_task(
    db: Session, queue: Queue, labeler: User, order: list[int], seconds: float = 30.0
) -> int:
    """Lease the labeler's next task of the queue and submit a ranking of its responses
    (`order`: response ids, best first), `seconds` after the lease; the comparison's id."""
    from datetime import timedelta

    from app.models import Comparison
    from app.schemas.labeling import ComparisonSubmit, ItemJudgement
    from app.services import assignments

    assignment = assignments.lease_next_task(db, queue.id, labeler)
    assert assignment is not None
    items = [
        ItemJudgement(response_id=response_id, score=max(1, 7 - rank), rank=rank)
        for rank, response_id in enumerate(order, start=1)
    ]
    assignments.submit_comparison(
        db,
        assignment.id,
        labeler,
        ComparisonSubmit(items=items),
        now=assignment.leased_at + timedelta(seconds=seconds),
    )
    comparison = db.scalar(select(Comparison).where(Comparison.assignment_id == assignment.id))
    assert comparison is not None
    return comparison.id
