"""Tasks where a judge disagrees with people go back for one more human label: the review
page's "send back" (app/services/reviews.py) for many tasks at once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import Queue, Task
from app.services.prompts import get_project_checked
from app.services.queues import chunks


def send_back_tasks(db: Session, project_id: int, task_ids: Sequence[int]) -> list[int]:
    """One more human label on each task: its overlap grows by one, so the next labeler who has
    not judged it is leased it. All or nothing: a task of another project, or a retired one,
    refuses the lot."""
    get_project_checked(db, project_id)
    wanted = sorted(set(task_ids))
    found = {
        task.id: task
        for chunk in chunks(wanted)
        for task in db.scalars(
            select(Task)
            .join(Queue, Queue.id == Task.queue_id)
            .where(Task.id.in_(chunk), Queue.project_id == project_id)
        )
    }
    for task_id in wanted:
        if task_id not in found:
            raise InvalidInput(
                f"no task with id {task_id} in project {project_id}", field="task_ids"
            )
        if found[task_id].retired_at is not None:
            raise Conflict(f"task {task_id} is retired: nobody can be leased it")
    for task in found.values():
        task.overlap += 1
    db.commit()
    return wanted
