"""A small project for the data browser's tests: three prompts in two queues, four
comparisons by two labelers and one import, a flag, a guideline version, a gold task, two
days, and a label in another project that must never show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Project,
    PromptCategory,
    Queue,
    Response,
    Task,
    User,
)
from tests.conftest import make_user
from tests.factories import (
    make_project,
    make_prompt,
    make_queue,
    make_responses,
    make_task,
    publish_guideline,
)

DAY1 = datetime(2026, 3, 1, 9, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@dataclass
class World:
    project: Project
    queue: Queue
    other_queue: Queue
    ada: User
    bob: User
    tasks: list[Task]
    comparisons: list[Comparison]
    version: int


def judge(
    db: Session,
    task: Task,
    labeler: User | None,
    *,
    at: datetime,
    flags: list[str] | None = None,
    guideline_id: int | None = None,
    comment: str = "",
) -> Comparison:
    comparison = Comparison(
        task_id=task.id,
        prompt_id=task.prompt_id,
        labeler_id=labeler.id if labeler else None,
        source=LabelSource.labeler if labeler else LabelSource.imported,
        source_name="" if labeler else "hh.jsonl",
        guideline_version_id=guideline_id,
        comment=comment,
        created_at=at,
    )
    db.add(comparison)
    db.flush()
    responses = db.query(Response).filter(Response.prompt_id == task.prompt_id).all()
    for rank, response in enumerate(responses, start=1):
        db.add(
            ComparisonItem(
                comparison_id=comparison.id,
                response_id=response.id,
                rank=rank,
                flags=(flags or []) if rank == 1 else [],
            )
        )
    db.flush()
    return comparison


def build_world(db: Session) -> World:
    project = make_project(db)
    queue = make_queue(db, project, name="Main")
    other_queue = make_queue(db, project, name="Second")
    ada = make_user(db, "ada")
    bob = make_user(db, "bob")
    guideline = publish_guideline(db, project, 1)
    texts = ["Explain photosynthesis to a child.", "Write a haiku about rain.", "Café au lait?"]
    tasks = []
    for index, text in enumerate(texts):
        prompt = make_prompt(db, project, text)
        if index == 1:
            prompt.category = PromptCategory.generation
        tasks.append(
            make_task(
                db, queue if index < 2 else other_queue, prompt, make_responses(db, prompt, 2)
            )
        )
    tasks[2].is_gold = True
    comparisons = [
        judge(db, tasks[0], ada, at=DAY1, flags=["hallucination"], guideline_id=guideline.id),
        judge(db, tasks[0], bob, at=DAY1, comment="both fine"),
        judge(db, tasks[1], ada, at=DAY2),
        judge(db, tasks[2], None, at=DAY2),
    ]
    # Another project's label never shows.
    elsewhere = make_project(db, "Elsewhere")
    stray = make_prompt(db, elsewhere, "Explain photosynthesis to a child.")
    judge(
        db,
        make_task(db, make_queue(db, elsewhere), stray, make_responses(db, stray, 2)),
        ada,
        at=DAY1,
    )
    db.commit()
    return World(project, queue, other_queue, ada, bob, tasks, comparisons, guideline.version)
