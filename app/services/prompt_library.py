"""A project's prompts as people browse and edit them: pages of prompts with their response
and task counts, a prompt's category, and a response's text while nothing depends on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import (
    ComparisonItem,
    Demonstration,
    Pair,
    Prompt,
    PromptCategory,
    Queue,
    Response,
    ResponseScore,
    Task,
)
from app.schemas.prompts import ResponseEdit
from app.schemas.queues import MIN_COMPARISON_RESPONSES
from app.services import tasks as task_service
from app.services.prompts import get_project_checked, get_prompt, storable_id
from app.services.queues import chunks, get_queue

PROMPTS_PER_PAGE = 50
RESPONSE_IN_USE = (
    "response {id} cannot be edited: {uses} already refer to its text; add a new response instead"
)


@dataclass(frozen=True)
class PromptSummary:
    prompt: Prompt
    responses: int
    tasks: int

    @property
    def first_user_message(self) -> str:
        return next((m["content"] for m in self.prompt.messages if m.get("role") == "user"), "")


def list_prompt_summaries(
    db: Session,
    project_id: int,
    *,
    before: int | None = None,
    category: PromptCategory | None = None,
    limit: int = PROMPTS_PER_PAGE,
) -> list[PromptSummary]:
    """Newest first, one page: the prompts with an id below `before` (keyset paging, so a page
    stays put while prompts are added)."""
    get_project_checked(db, project_id)
    query = select(Prompt).where(Prompt.project_id == project_id)
    if before is not None:
        query = query.where(Prompt.id < before)
    if category is not None:
        query = query.where(Prompt.category == category)
    found = list(db.scalars(query.order_by(Prompt.id.desc()).limit(limit)))
    ids = [prompt.id for prompt in found]
    responses = _counts(db, Response.prompt_id, ids)
    tasks = _counts(db, Task.prompt_id, ids)
    return [
        PromptSummary(prompt, responses.get(prompt.id, 0), tasks.get(prompt.id, 0))
        for prompt in found
    ]


def _counts(db: Session, column: object, prompt_ids: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for chunk in chunks(list(prompt_ids)):
        rows = db.execute(
            select(column, func.count()).where(column.in_(chunk)).group_by(column)  # type: ignore[attr-defined]
        )
        counts |= {prompt_id: int(count) for prompt_id, count in rows}
    return counts


def get_project_prompt(db: Session, project_id: int, prompt_id: int) -> Prompt:
    """A prompt of this project; another project's prompt is as unknown as a missing one."""
    get_project_checked(db, project_id)
    prompt = get_prompt(db, prompt_id)
    if prompt.project_id != project_id:
        raise NotFound(f"no prompt with id {prompt_id}")
    return prompt


def set_category(db: Session, prompt_id: int, category: PromptCategory) -> Prompt:
    prompt = get_prompt(db, prompt_id)
    prompt.category = category
    db.commit()
    return prompt


def response_uses(db: Session, response_ids: Sequence[int]) -> dict[int, list[str]]:
    """What already refers to each response's text: labels made on it (comparisons, pairs,
    demonstrations that started from it or became it), labelers' rewrites of it, reward-model
    scores. A response with any use keeps its text, or those would describe text it no longer
    has."""
    uses: dict[int, list[str]] = {response_id: [] for response_id in response_ids}
    checks = (
        ("comparisons", ComparisonItem.response_id, None),
        ("pairs", Pair.winner_response_id, Pair.loser_response_id),
        ("demonstrations", Demonstration.response_id, Demonstration.draft_response_id),
        ("rewrites", Response.parent_id, None),
        ("reward-model scores", ResponseScore.response_id, None),
    )
    for chunk in chunks([rid for rid in response_ids if storable_id(rid)]):
        for name, first, second in checks:
            columns = [column for column in (first, second) if column is not None]
            for column in columns:
                rows = db.scalars(
                    select(column).where(column.in_(chunk)).distinct()  # type: ignore[union-attr]
                )
                for response_id in rows:
                    if name not in uses[response_id]:
                        uses[response_id].append(name)
    return uses


def edit_response(db: Session, prompt_id: int, response_id: int, data: ResponseEdit) -> Response:
    response = db.get(Response, response_id) if storable_id(response_id) else None
    if response is None or response.prompt_id != prompt_id:
        raise NotFound(f"no response with id {response_id}")
    uses = response_uses(db, [response_id])[response_id]
    if uses:
        raise Conflict(
            RESPONSE_IN_USE.format(id=response_id, uses=", ".join(uses)), field="content"
        )
    response.content = data.content
    db.commit()
    return response


def tasks_of_prompt(db: Session, prompt_id: int) -> list[tuple[Task, Queue]]:
    """The prompt's tasks with their queues, oldest first."""
    rows = db.execute(
        select(Task, Queue)
        .join(Queue, Task.queue_id == Queue.id)
        .where(Task.prompt_id == prompt_id)
    )
    return [(task, queue) for task, queue in sorted(rows, key=lambda row: row[0].id)]


def add_prompt_to_queue(db: Session, project_id: int, prompt_id: int, queue_id: int) -> Task:
    """One task for this prompt in a queue of its project, with all its responses when the
    queue compares; the same task again (the same responses) is refused, while a task with
    the prompt's responses since then is a new one."""
    get_project_prompt(db, project_id, prompt_id)
    queue = get_queue(db, queue_id)
    if queue.project_id != project_id:
        raise InvalidInput(f"queue {queue_id} is not in this project", field="queue_id")
    try:
        added = task_service.add_tasks_for_prompts(db, queue_id, [prompt_id])
    except Conflict as error:
        raise Conflict(error.message, field="queue_id") from None
    if added.skipped_prompt_ids:
        raise InvalidInput(
            f"a comparison task needs at least {MIN_COMPARISON_RESPONSES} responses: "
            "add another response first",
            field="queue_id",
        )
    return added.tasks[0]
