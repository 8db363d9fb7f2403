"""Which wanted tasks a queue already has: a live (not retired) task for the same prompt with
the same set of responses, in any order. Such a task would ask labelers for the same judgement
twice; the same prompt with another set of responses (a new round of model samples) is a new
task. Retired tasks do not count: retiring one and adding it again is how it comes back.

The database cannot hold this rule as a plain constraint (a task's responses are rows of their
own), so adding tasks checks it, holding the queue's row so that two requests adding the same
task at once take turns (app/services/tasks.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Queue, Task, TaskResponse
from app.services.queues import chunks

# Prompts named in a refusal; more are counted.
LISTED_PROMPTS = 10


def live_tasks_like(
    db: Session, queue: Queue, wanted: Sequence[tuple[int, Sequence[int]]]
) -> dict[int, int]:
    """For each wanted (prompt id, response ids) that repeats a live task of the queue, or an
    earlier wanted one, by its index: the task it repeats, or -1 - the earlier one's index."""
    shown: dict[tuple[int, frozenset[int]], int] = {}
    for chunk in chunks(sorted({prompt_id for prompt_id, _ in wanted})):
        tasks = dict(
            db.execute(
                select(Task.id, Task.prompt_id).where(
                    Task.queue_id == queue.id, Task.prompt_id.in_(chunk), Task.retired_at.is_(None)
                )
            ).all()
        )
        responses: dict[int, set[int]] = {task_id: set() for task_id in tasks}
        for task_chunk in chunks(sorted(tasks)):
            rows = db.execute(
                select(TaskResponse.task_id, TaskResponse.response_id).where(
                    TaskResponse.task_id.in_(task_chunk)
                )
            )
            for task_id, response_id in rows:
                responses[task_id].add(response_id)
        for task_id in sorted(tasks):
            shown.setdefault((tasks[task_id], frozenset(responses[task_id])), task_id)
    found: dict[int, int] = {}
    for index, (prompt_id, response_ids) in enumerate(wanted):
        key = (prompt_id, frozenset(response_ids))
        if key in shown:
            found[index] = shown[key]
        else:
            shown[key] = -1 - index
    return found


def repeats_message(queue: Queue, prompt_ids: Sequence[int], repeats: dict[int, int]) -> str:
    """The refusal, naming the prompts (and the tasks they repeat)."""
    earlier = [(prompt_ids[index], task) for index, task in sorted(repeats.items()) if task > 0]
    twice = sorted({prompt_ids[index] for index, task in repeats.items() if task < 0})
    parts = []
    if earlier:
        listed = ", ".join(f"prompt {p} (task {t})" for p, t in earlier[:LISTED_PROMPTS])
        if len(earlier) > LISTED_PROMPTS:
            listed += f" and {len(earlier) - LISTED_PROMPTS} more"
        parts.append(f"{queue.name} already has a task with the same responses for {listed}")
    if twice:
        listed = ", ".join(str(prompt_id) for prompt_id in twice[:LISTED_PROMPTS])
        if len(twice) > LISTED_PROMPTS:
            listed += f" and {len(twice) - LISTED_PROMPTS} more"
        plural = "s" if len(twice) > 1 else ""
        parts.append(f"the same task is asked for twice for prompt{plural} {listed}")
    return (
        "; ".join(parts)
        + ": nothing was added (a new task for a prompt needs a different set of responses)"
    )
