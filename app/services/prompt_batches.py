"""A batch of prompts pasted or uploaded as JSONL, with their responses, optionally made into
tasks of one queue.

One JSON object a line: {"prompt": "text"} or {"messages": [{"role": ..., "content": ...}]},
with an optional "category" and "responses" (texts, or {"content": ..., "source_name": ...}).
Blank lines are skipped. All or nothing: every bad line is reported with its number and
reason, and then nothing of the batch is stored.

Nothing is stored twice: a prompt the project already has (the same conversation, by content
hash, as imports find it) or one repeated in the batch is merged into that prompt, a response
whose text its prompt already has (from any source) is merged into that response, and a
prompt whose task the queue already has gets no second one; each is counted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Prompt, QueueKind, Response, User
from app.schemas.prompts import PromptBatchLine, PromptCreate, ResponseCreate
from app.schemas.queues import MAX_COMPARISON_RESPONSES, MIN_COMPARISON_RESPONSES
from app.services import tasks as task_service
from app.services.prompts import (
    get_project_checked,
    new_prompt,
    new_response,
    prompt_content_hash,
)
from app.services.queues import chunks, get_queue

MAX_BATCH_PROMPTS = 1000
# Bad lines listed in a report; more are counted.
LISTED_PROBLEMS = 100


@dataclass(frozen=True)
class LineProblem:
    line: int
    reason: str


@dataclass
class BatchResult:
    lines: int = 0
    # The batch's prompts, each once, in the order the lines first give them.
    prompt_ids: list[int] = field(default_factory=list)
    # Per line: a new prompt, one the project already had, or one an earlier line gave.
    prompts_created: int = 0
    prompts_existing: int = 0
    prompts_repeated: int = 0
    # Per response given: new, a text its prompt already had, or one given earlier.
    responses: int = 0
    responses_existing: int = 0
    responses_repeated: int = 0
    tasks: int = 0
    # Prompts whose task (the same responses) the queue already had.
    tasks_existing: int = 0
    # Set only when the batch was refused: then nothing was stored.
    problems: list[LineProblem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def stored(self) -> bool:
        return self.problem_count == 0


@dataclass(frozen=True)
class _Line:
    number: int
    prompt: PromptCreate
    responses: list[ResponseCreate]


def _reason(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _parse_line(text: str, number: int, source: str, queue_kind: QueueKind | None) -> _Line:
    """The line as a prompt and its responses; InvalidInput says why it is not one."""
    try:
        row = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        reason = getattr(error, "msg", "nested too deeply")
        raise InvalidInput(f"not JSON ({reason})") from None
    if not isinstance(row, dict):
        raise InvalidInput(f"a line must be a JSON object, not {type(row).__name__}")
    try:
        parsed = PromptBatchLine.model_validate(row)
        prompt = parsed.as_prompt(source)
    except ValidationError as error:
        raise InvalidInput(_reason(error)) from None
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    responses = []
    for index, item in enumerate(parsed.responses, start=1):
        content, source_name = (
            (item, "") if isinstance(item, str) else (item.content, item.source_name)
        )
        try:
            responses.append(ResponseCreate(content=content, source_name=source_name))
        except ValidationError as error:
            raise InvalidInput(f"response {index}: {_reason(error)}") from None
    distinct = len({response.content for response in responses})
    if queue_kind == QueueKind.comparison and not (
        MIN_COMPARISON_RESPONSES <= distinct <= MAX_COMPARISON_RESPONSES
    ):
        repeats = " (a repeated text is one response)" if distinct < len(responses) else ""
        raise InvalidInput(
            f"a comparison task shows {MIN_COMPARISON_RESPONSES} to {MAX_COMPARISON_RESPONSES} "
            f"responses; this line has {distinct}{repeats}"
        )
    return _Line(number, prompt, responses)


def add_prompt_batch(
    db: Session,
    project_id: int,
    text: str,
    acting: User,
    *,
    source: str,
    queue_id: int | None = None,
) -> BatchResult:
    """Stores every line's prompt and responses, and a task for each in the queue, in one
    commit; or, when any line is bad, nothing, and reports every bad line."""
    get_project_checked(db, project_id)
    queue = None
    if queue_id is not None:
        queue = get_queue(db, queue_id)
        if queue.project_id != project_id:
            raise InvalidInput(f"queue {queue_id} is not in this project", field="queue_id")
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        raise InvalidInput("paste or upload at least one line", field="batch")
    if len(numbered) > MAX_BATCH_PROMPTS:
        raise InvalidInput(
            f"a batch holds at most {MAX_BATCH_PROMPTS:,} prompts; this one has "
            f"{len(numbered):,}: split it",
            field="batch",
        )
    result = BatchResult(lines=len(numbered))
    parsed: list[_Line] = []
    for number, line in numbered:
        try:
            parsed.append(_parse_line(line, number, source, queue.kind if queue else None))
        except InvalidInput as problem:
            result.problem_count += 1
            if len(result.problems) < LISTED_PROBLEMS:
                result.problems.append(LineProblem(number, problem.message))
    if result.problem_count:
        return result
    try:
        _store_lines(db, project_id, parsed, acting, result)
        if queue is not None:
            # Commits the prompts, responses and tasks together.
            added = task_service.add_tasks_for_prompts(
                db, queue.id, result.prompt_ids, skip_tasked=True
            )
            result.tasks = len(added.tasks)
            result.tasks_existing = len(added.already_tasked_prompt_ids)
        else:
            db.commit()
    except BaseException:
        db.rollback()
        raise
    return result


def _store_lines(
    db: Session, project_id: int, parsed: list[_Line], acting: User, result: BatchResult
) -> None:
    """Adds each line's prompt and responses to the session unless already there; counts."""
    hashes = [
        prompt_content_hash([message.model_dump() for message in item.prompt.messages])
        for item in parsed
    ]
    prompts: dict[str, int] = {}
    for chunk in chunks(sorted(set(hashes))):
        rows = db.execute(
            select(Prompt.content_hash, func.min(Prompt.id))
            .where(Prompt.project_id == project_id, Prompt.content_hash.in_(chunk))
            .group_by(Prompt.content_hash)
        )
        prompts |= {content_hash: prompt_id for content_hash, prompt_id in rows}
    texts: set[tuple[int, str]] = set()
    for chunk in chunks(sorted(prompts.values())):
        rows = db.execute(
            select(Response.prompt_id, Response.content).where(Response.prompt_id.in_(chunk))
        )
        texts |= {(prompt_id, content) for prompt_id, content in rows}
    existing_prompts = set(prompts)
    given: set[tuple[int, str]] = set()
    for item, content_hash in zip(parsed, hashes, strict=True):
        if content_hash in existing_prompts:
            result.prompts_existing += 1
        elif content_hash in prompts:
            result.prompts_repeated += 1
        else:
            prompts[content_hash] = new_prompt(db, project_id, item.prompt, acting).id
            result.prompts_created += 1
        prompt_id = prompts[content_hash]
        if prompt_id not in result.prompt_ids:
            result.prompt_ids.append(prompt_id)
        for response in item.responses:
            key = (prompt_id, response.content)
            if key in texts:
                result.responses_existing += 1
            elif key in given:
                result.responses_repeated += 1
            else:
                new_response(db, prompt_id, response, acting)
                given.add(key)
                result.responses += 1
