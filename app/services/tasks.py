"""Tasks of a queue: adding them (from prompts, or prompts with chosen responses), reading
them, and gold answers.

A comparison task shows 2..9 responses of its prompt; a demonstration task shows none, or one
model draft the labeler may start from. Adding is all or nothing: the first bad item is refused
with its place (items.N.field). A task the queue already has live (the same prompt with the
same set of responses) is not made twice: refused with a 409 naming the prompts, or, for a
batch that merges what is already there, counted. The same prompt with another set of
responses (a new round of model samples) is a new task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Prompt, Queue, QueueKind, Response, Task, TaskResponse
from app.schemas.queues import (
    MAX_COMPARISON_RESPONSES,
    MIN_COMPARISON_RESPONSES,
    GoldAnswer,
    TasksAdd,
)
from app.services.prompts import storable_id
from app.services.queues import chunks, get_queue
from app.services.task_repeats import live_tasks_like, repeats_message

DEMONSTRATION_DRAFTS = "a demonstration task offers at most one draft response"


@dataclass
class AddedTasks:
    tasks: list[Task] = field(default_factory=list)
    # Prompts of a comparison queue with fewer than 2 responses: nothing to compare.
    skipped_prompt_ids: list[int] = field(default_factory=list)
    # Prompts whose task (the same responses) the queue already had, when asked to skip them.
    already_tasked_prompt_ids: list[int] = field(default_factory=list)


@dataclass
class _NewTask:
    prompt_id: int
    response_ids: list[int]
    priority: int = 0
    gold_answer: dict[str, Any] | None = None


def get_task(db: Session, task_id: int) -> Task:
    task = db.get(Task, task_id) if storable_id(task_id) else None
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    return task


def list_tasks(db: Session, queue_id: int, limit: int = 50, offset: int = 0) -> list[Task]:
    get_queue(db, queue_id)
    query = select(Task).where(Task.queue_id == queue_id).order_by(Task.id)
    return list(db.scalars(query.limit(limit).offset(offset)))


def count_tasks(db: Session, queue_id: int) -> int:
    query = select(func.count()).select_from(Task).where(Task.queue_id == queue_id)
    return int(db.scalar(query) or 0)


def response_ids_by_task(db: Session, task_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each task's responses in their stored order (position 0..K-1)."""
    found: dict[int, list[int]] = {task_id: [] for task_id in task_ids}
    for chunk in chunks(list(task_ids)):
        rows = db.execute(
            select(TaskResponse.task_id, TaskResponse.response_id)
            .where(TaskResponse.task_id.in_(chunk))
            .order_by(TaskResponse.task_id, TaskResponse.position)
        )
        for task_id, response_id in rows:
            found[task_id].append(response_id)
    return found


def add_tasks(db: Session, queue_id: int, data: TasksAdd) -> list[Task]:
    """All items or none: the first bad one is refused with its place (items.N.field)."""
    queue = get_queue(db, queue_id)
    _check_prompts(db, queue, [item.prompt_id for item in data.items], "items.{}.prompt_id")
    owners = _response_owners(db, [rid for item in data.items for rid in item.response_ids])
    new = []
    for index, item in enumerate(data.items):
        where = f"items.{index}"
        _check_responses(queue, item.prompt_id, item.response_ids, owners, f"{where}.response_ids")
        gold = None
        if item.is_gold or item.gold_answer is not None:
            if queue.kind == QueueKind.demonstration:
                raise InvalidInput(GOLD_ONLY_FOR_COMPARISONS, field=f"{where}.is_gold")
            if not item.is_gold:
                raise InvalidInput("a gold_answer needs is_gold", field=f"{where}.is_gold")
            if item.gold_answer is None:
                raise InvalidInput(
                    "a gold task needs its gold_answer", field=f"{where}.gold_answer"
                )
            gold = _checked_gold(item.gold_answer, item.response_ids, f"{where}.gold_answer")
        new.append(_NewTask(item.prompt_id, list(item.response_ids), item.priority, gold))
    _without_tasked(db, queue, new, AddedTasks(), False, "items")
    return _insert_tasks(db, queue, new)


def add_tasks_from_prompts(db: Session, queue_id: int, prompt_ids: Sequence[int]) -> list[Task]:
    """One demonstration task per prompt."""
    return _add_demonstration_tasks(db, queue_id, prompt_ids, skip_tasked=False).tasks


def _add_demonstration_tasks(
    db: Session, queue_id: int, prompt_ids: Sequence[int], *, skip_tasked: bool
) -> AddedTasks:
    queue = get_queue(db, queue_id)
    if queue.kind != QueueKind.demonstration:
        raise InvalidInput(
            "this is a comparison queue: its tasks need responses", field="prompt_ids"
        )
    _check_prompt_list(db, queue, prompt_ids)
    new = [_NewTask(prompt_id, []) for prompt_id in prompt_ids]
    added = AddedTasks()
    new = _without_tasked(db, queue, new, added, skip_tasked, "prompt_ids")
    added.tasks = _insert_tasks(db, queue, new)
    return added


def add_comparison_tasks_for_prompts(
    db: Session, queue_id: int, prompt_ids: Sequence[int], *, skip_tasked: bool = False
) -> AddedTasks:
    """One comparison task per prompt with all its responses (oldest first); prompts with
    fewer than 2 responses are skipped and reported. A prompt whose task with these responses
    the queue already has is refused, or with `skip_tasked` left out and reported."""
    queue = get_queue(db, queue_id)
    if queue.kind != QueueKind.comparison:
        raise InvalidInput(
            "this is a demonstration queue: its tasks have no responses", field="prompt_ids"
        )
    _check_prompt_list(db, queue, prompt_ids)
    responses: dict[int, list[int]] = {prompt_id: [] for prompt_id in prompt_ids}
    for chunk in chunks(list(prompt_ids)):
        rows = db.execute(
            select(Response.prompt_id, Response.id)
            .where(Response.prompt_id.in_(chunk))
            .order_by(Response.id)
        )
        for prompt_id, response_id in rows:
            responses[prompt_id].append(response_id)
    added = AddedTasks()
    new = []
    for prompt_id in prompt_ids:
        found = responses[prompt_id]
        if len(found) < MIN_COMPARISON_RESPONSES:
            added.skipped_prompt_ids.append(prompt_id)
        elif len(found) > MAX_COMPARISON_RESPONSES:
            raise InvalidInput(
                f"prompt {prompt_id} has {len(found)} responses; a comparison task shows "
                f"at most {MAX_COMPARISON_RESPONSES}: add its tasks one by one",
                field="prompt_ids",
            )
        else:
            new.append(_NewTask(prompt_id, found))
    new = _without_tasked(db, queue, new, added, skip_tasked, "prompt_ids")
    added.tasks = _insert_tasks(db, queue, new)
    return added


def add_tasks_for_prompts(
    db: Session, queue_id: int, prompt_ids: Sequence[int], *, skip_tasked: bool = False
) -> AddedTasks:
    """A task per prompt, of the queue's kind."""
    queue = get_queue(db, queue_id)
    if queue.kind == QueueKind.comparison:
        return add_comparison_tasks_for_prompts(db, queue_id, prompt_ids, skip_tasked=skip_tasked)
    return _add_demonstration_tasks(db, queue_id, prompt_ids, skip_tasked=skip_tasked)


def _untasked(queue: Queue) -> Select[tuple[int]]:
    """The project's prompts that have no task in this queue yet."""
    has_task = exists().where(Task.queue_id == queue.id, Task.prompt_id == Prompt.id)
    return select(Prompt.id).where(Prompt.project_id == queue.project_id, ~has_task)


def untasked_prompt_ids(db: Session, queue_id: int) -> list[int]:
    """Oldest first."""
    return list(db.scalars(_untasked(get_queue(db, queue_id)).order_by(Prompt.id)))


def count_untasked_prompts(db: Session, queue_id: int) -> int:
    query = select(func.count()).select_from(_untasked(get_queue(db, queue_id)).subquery())
    return int(db.scalar(query) or 0)


def add_tasks_for_untasked_prompts(db: Session, queue_id: int) -> AddedTasks:
    prompt_ids = untasked_prompt_ids(db, queue_id)
    if not prompt_ids:
        return AddedTasks()
    return add_tasks_for_prompts(db, queue_id, prompt_ids)


def _without_tasked(
    db: Session,
    queue: Queue,
    new: list[_NewTask],
    added: AddedTasks,
    skip: bool,
    where: str,
) -> list[_NewTask]:
    """`new` less the tasks the queue already has; with `skip` false, any such task refuses
    the whole request (409), naming its prompts."""
    # Two admins adding the same task at once: on PostgreSQL the second waits here for the
    # first's commit and then sees its task (NO KEY UPDATE leaves inserts that refer to the
    # queue alone). SQLite's transactions already take turns (IMMEDIATE, app/db.py).
    db.execute(select(Queue.id).where(Queue.id == queue.id).with_for_update(key_share=True))
    repeats = live_tasks_like(db, queue, [(spec.prompt_id, spec.response_ids) for spec in new])
    if not repeats:
        return new
    if not skip:
        raise Conflict(
            repeats_message(queue, [spec.prompt_id for spec in new], repeats), field=where
        )
    added.already_tasked_prompt_ids = [new[index].prompt_id for index in sorted(repeats)]
    return [spec for index, spec in enumerate(new) if index not in repeats]


def _insert_tasks(db: Session, queue: Queue, new: list[_NewTask]) -> list[Task]:
    tasks = [
        Task(
            queue_id=queue.id,
            prompt_id=spec.prompt_id,
            priority=spec.priority,
            overlap=queue.overlap,
            is_gold=spec.gold_answer is not None,
            gold_answer=spec.gold_answer,
        )
        for spec in new
    ]
    db.add_all(tasks)
    db.flush()
    db.add_all(
        TaskResponse(task_id=task.id, response_id=response_id, position=position)
        for task, spec in zip(tasks, new, strict=True)
        for position, response_id in enumerate(spec.response_ids)
    )
    db.commit()
    return tasks


def _check_prompt_list(db: Session, queue: Queue, prompt_ids: Sequence[int]) -> None:
    if not prompt_ids:
        raise InvalidInput("give at least one prompt id", field="prompt_ids")
    seen: set[int] = set()
    for prompt_id in prompt_ids:
        if prompt_id in seen:
            raise InvalidInput(f"prompt {prompt_id} is listed twice", field="prompt_ids")
        seen.add(prompt_id)
    _check_prompts(db, queue, prompt_ids, "prompt_ids")


def _check_prompts(db: Session, queue: Queue, prompt_ids: Sequence[int], where: str) -> None:
    """Every prompt exists and belongs to the queue's project; `where` names the field, with
    {} for the item's index."""
    unique = sorted(prompt_id for prompt_id in set(prompt_ids) if storable_id(prompt_id))
    projects: dict[int, int] = {}
    for chunk in chunks(unique):
        rows = db.execute(select(Prompt.id, Prompt.project_id).where(Prompt.id.in_(chunk)))
        projects |= {prompt_id: project_id for prompt_id, project_id in rows}
    for index, prompt_id in enumerate(prompt_ids):
        if prompt_id not in projects:
            raise InvalidInput(f"no prompt with id {prompt_id}", field=where.format(index))
        if projects[prompt_id] != queue.project_id:
            raise InvalidInput(
                f"prompt {prompt_id} is not in this queue's project", field=where.format(index)
            )


def _response_owners(db: Session, response_ids: Sequence[int]) -> dict[int, int]:
    owners: dict[int, int] = {}
    for chunk in chunks(sorted(rid for rid in set(response_ids) if storable_id(rid))):
        rows = db.execute(select(Response.id, Response.prompt_id).where(Response.id.in_(chunk)))
        owners |= {response_id: prompt_id for response_id, prompt_id in rows}
    return owners


def _check_responses(
    queue: Queue, prompt_id: int, response_ids: list[int], owners: dict[int, int], where: str
) -> None:
    if queue.kind == QueueKind.demonstration:
        # One model draft at most, for the labeler to edit into their demonstration.
        if len(response_ids) > 1:
            raise InvalidInput(DEMONSTRATION_DRAFTS, field=where)
        _check_owners(prompt_id, response_ids, owners, where)
        return
    if len(response_ids) < MIN_COMPARISON_RESPONSES:
        raise InvalidInput(
            f"a comparison task needs at least {MIN_COMPARISON_RESPONSES} responses", field=where
        )
    if len(response_ids) > MAX_COMPARISON_RESPONSES:
        raise InvalidInput(
            f"a comparison task shows at most {MAX_COMPARISON_RESPONSES} responses", field=where
        )
    repeated = sorted({rid for rid in response_ids if response_ids.count(rid) > 1})
    if repeated:
        raise InvalidInput(
            "a task shows each response once; repeated: " + ", ".join(map(str, repeated)),
            field=where,
        )
    _check_owners(prompt_id, response_ids, owners, where)


def _check_owners(
    prompt_id: int, response_ids: list[int], owners: dict[int, int], where: str
) -> None:
    for response_id in response_ids:
        if response_id not in owners:
            raise InvalidInput(f"no response with id {response_id}", field=where)
        if owners[response_id] != prompt_id:
            raise InvalidInput(
                f"response {response_id} is not a response to prompt {prompt_id}", field=where
            )


# --- gold answers ---------------------------------------------------------------------------

GOLD_ONLY_FOR_COMPARISONS = "gold answers are only supported for comparison tasks"
GOLD_SHAPE = 'a gold answer is {"ranking": [[best response ids], [next ids], ...]}'


def set_gold(db: Session, task_id: int, gold_answer: dict[str, Any] | None) -> Task:
    """Makes a comparison task a gold task with this known ranking; None makes it ordinary."""
    task = get_task(db, task_id)
    queue = get_queue(db, task.queue_id)
    if gold_answer is None:
        task.is_gold, task.gold_answer = False, None
        db.commit()
        return task
    if queue.kind == QueueKind.demonstration:
        raise InvalidInput(GOLD_ONLY_FOR_COMPARISONS, field="ranking")
    response_ids = response_ids_by_task(db, [task.id])[task.id]
    task.gold_answer = _checked_gold(gold_answer, response_ids, "ranking")
    task.is_gold = True
    db.commit()
    return task


def _checked_gold(answer: dict[str, Any], response_ids: list[int], where: str) -> dict[str, Any]:
    try:
        ranking = GoldAnswer.model_validate(answer).ranking
    except ValidationError as error:
        raise InvalidInput(GOLD_SHAPE, field=where) from error
    if any(not group for group in ranking):
        raise InvalidInput("a group of tied responses cannot be empty", field=where)
    ranked = [response_id for group in ranking for response_id in group]
    repeated = sorted({rid for rid in ranked if ranked.count(rid) > 1})
    if repeated:
        raise InvalidInput(
            "each response is ranked once; repeated: " + ", ".join(map(str, repeated)),
            field=where,
        )
    missing = sorted(set(response_ids) - set(ranked))
    foreign = sorted(set(ranked) - set(response_ids))
    if missing or foreign:
        details = []
        if missing:
            details.append("missing " + ", ".join(map(str, missing)))
        if foreign:
            details.append("not in the task: " + ", ".join(map(str, foreign)))
        raise InvalidInput(
            "the ranking must cover exactly the task's responses; " + "; ".join(details),
            field=where,
        )
    if len(ranking) < 2:
        raise InvalidInput(
            "a ranking with every response tied says nothing; order them in at least 2 groups",
            field=where,
        )
    return {"ranking": ranking}
