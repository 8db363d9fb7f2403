"""The queue page's task table: what each task asks (its prompt's first words) and how many
labels it has, so an admin reads the table instead of looking up ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Comparison, Demonstration, Prompt, Task
from app.services.browsing import first_user_text
from app.services.queues import chunks


@dataclass(frozen=True)
class TaskRow:
    prompt_text: str
    # Labels stored for the task by anyone (labelers and rewrites alike): what an admin would
    # open the task view to read.
    labels: int


def task_rows(db: Session, task_ids: Sequence[int]) -> dict[int, TaskRow]:
    """Each task's prompt text (first user turn, shortened) and number of labels."""
    texts: dict[int, str] = {}
    labels: dict[int, int] = {}
    for chunk in chunks(list(task_ids)):
        for task_id, messages in db.execute(
            select(Task.id, Prompt.messages)
            .join(Prompt, Prompt.id == Task.prompt_id)
            .where(Task.id.in_(chunk))
        ):
            texts[task_id] = first_user_text(messages)
        for model in (Comparison, Demonstration):
            for task_id, count in db.execute(
                select(model.task_id, func.count())
                .where(model.task_id.in_(chunk))
                .group_by(model.task_id)
            ):
                labels[task_id] = labels.get(task_id, 0) + count
    return {task_id: TaskRow(texts[task_id], labels.get(task_id, 0)) for task_id in texts}
