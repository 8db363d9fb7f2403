"""A batch of prompts pasted or uploaded as JSONL, with their responses, optionally made into
tasks of one queue.

One JSON object a line: {"prompt": "text"} or {"messages": [{"role": ..., "content": ...}]},
with an optional "category" and "responses" (texts, or {"content": ..., "source_name": ...}).
Blank lines are skipped. All or nothing: every bad line is reported with its number and
reason, and then nothing of the batch is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import QueueKind, User
from app.schemas.prompts import PromptBatchLine, PromptCreate, ResponseCreate
from app.schemas.queues import MAX_COMPARISON_RESPONSES, MIN_COMPARISON_RESPONSES
from app.services import tasks as task_service
from app.services.prompts import get_project_checked, new_prompt, new_response
from app.services.queues import get_queue

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
    prompt_ids: list[int] = field(default_factory=list)
    responses: int = 0
    tasks: int = 0
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
    if queue_kind == QueueKind.comparison and not (
        MIN_COMPARISON_RESPONSES <= len(responses) <= MAX_COMPARISON_RESPONSES
    ):
        raise InvalidInput(
            f"a comparison task shows {MIN_COMPARISON_RESPONSES} to {MAX_COMPARISON_RESPONSES} "
            f"responses; this line has {len(responses)}"
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
        for item in parsed:
            prompt = new_prompt(db, project_id, item.prompt, acting)
            result.prompt_ids.append(prompt.id)
            for response in item.responses:
                new_response(db, prompt.id, response, acting)
            result.responses += len(item.responses)
        if queue is not None:
            # Commits the prompts, responses and tasks together.
            added = task_service.add_tasks_for_prompts(db, queue.id, result.prompt_ids)
            result.tasks = len(added.tasks)
        else:
            db.commit()
    except BaseException:
        db.rollback()
        raise
    return result
