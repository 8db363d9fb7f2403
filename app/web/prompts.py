"""A project's prompts in the browser: write one (single or multi-turn) with its responses,
paste or upload a batch, edit a category or a response nothing refers to yet, and put prompts
into a queue. Admins and researchers write prompts; only admins fill queues, as on the queue
page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import DomainError, InvalidInput, PermissionDenied
from app.models import PromptCategory, Role, User
from app.schemas import common
from app.schemas.prompts import PromptCreate, ResponseEdit, typed_response
from app.services import prompt_batches, prompt_library, prompts, queues
from app.services.prompts import MAX_ID, get_project_checked
from app.web.rendering import form_errors, redirect, render

router = APIRouter(prefix="/projects/{project_id}/prompts")

# A batch file is read whole; the page's 16 MiB body cap keeps the request itself bounded.
MAX_BATCH_BYTES = 8 * 1024**2
ROLES = ("user", "assistant", "system")
QUEUES_ADMIN_ONLY = "only admins add tasks to queues"

Field = Annotated[common.Text, Form(max_length=1000)]
Content = Annotated[common.Text, Form(max_length=100_000)]
Contents = Annotated[list[common.Text], Form(max_length=100_000)]


def _status(error: Exception) -> int:
    return error.status_code if isinstance(error, DomainError) else 422


def _queue_id(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or int(value) > MAX_ID:
        raise InvalidInput(f"{value[:20]!r} is not a queue id", field="queue_id")
    return int(value)


# --- the list, the new prompt form and the batch form --------------------------------------


def _blank_form() -> dict[str, Any]:
    return {
        "turns": [{"role": "user", "content": ""}],
        "category": PromptCategory.other.value,
        "responses": [{"content": "", "source_name": ""}, {"content": "", "source_name": ""}],
    }


def _list_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    *,
    category: str = "",
    before: int | None = None,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    batch: str = "",
    batch_queue: str = "",
    batch_errors: dict[str, str] | None = None,
    batch_result: prompt_batches.BatchResult | None = None,
    status_code: int = 200,
) -> Response:
    project = get_project_checked(db, project_id)
    chosen = PromptCategory(category) if category in PromptCategory.__members__ else None
    summaries = prompt_library.list_prompt_summaries(db, project_id, before=before, category=chosen)
    full_page = len(summaries) == prompt_library.PROMPTS_PER_PAGE
    return render(
        request,
        "prompts/list.html",
        {
            "project": project,
            "summaries": summaries,
            "categories": list(PromptCategory),
            "category": chosen.value if chosen else "",
            "before": before,
            "next_before": summaries[-1].prompt.id if full_page else None,
            "queues": queues.list_queues(db, project_id),
            "form": form or _blank_form(),
            "roles": ROLES,
            "errors": errors or {},
            "batch": batch,
            "batch_queue": batch_queue,
            "batch_errors": batch_errors or {},
            "batch_result": batch_result,
            "max_batch": prompt_batches.MAX_BATCH_PROMPTS,
        },
        user=user,
        status_code=status_code,
    )


@router.get("")
def list_prompts(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    category: Annotated[common.Text, Query(max_length=40)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    return _list_page(request, db, user, project_id, category=category, before=before)


def _next_role(turns: list[dict[str, str]]) -> str:
    return "assistant" if turns and turns[-1]["role"] == "user" else "user"


@router.post("")
def create_prompt(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    role: Annotated[list[common.Text], Form(max_length=20)] = [],  # noqa: B006
    content: Contents = [],  # noqa: B006
    category: Field = "",
    response: Contents = [],  # noqa: B006
    response_source: Annotated[list[common.Text], Form(max_length=200)] = [],  # noqa: B006
    action: Field = "save",
) -> Response:
    """Saves the prompt, or (action add_turn / add_response) shows the form again with one more
    box: a plain round trip, so the form needs no script."""
    get_project_checked(db, project_id)
    turns = [{"role": r, "content": c} for r, c in zip(role, content, strict=False)]
    answers = [
        {"content": c, "source_name": s}
        for c, s in zip(response, response_source + [""] * len(response), strict=False)
    ]
    form = {"turns": turns, "category": category, "responses": answers}
    if action == "add_turn":
        turns.append({"role": _next_role(turns), "content": ""})
        return _list_page(request, db, user, project_id, form=form)
    if action == "add_response":
        answers.append({"content": "", "source_name": ""})
        return _list_page(request, db, user, project_id, form=form)
    errors: dict[str, str] = {}
    data = None
    try:
        # A box left empty is a turn or response not wanted; one of spaces is a mistake.
        data = PromptCreate(
            messages=[turn for turn in turns if turn["content"]],
            category=category or PromptCategory.other.value,
        )
    except ValidationError as error:
        errors |= form_errors(error)
    made = []
    for index, answer in enumerate(answers, start=1):
        if not answer["content"]:
            continue
        try:
            made.append(typed_response(answer["content"], answer["source_name"]))
        except ValidationError as error:
            problem = next(iter(form_errors(error).items()))
            errors[f"response_{index}"] = f"{problem[0]}: {problem[1]}"
    if data is not None and not errors:
        try:
            prompt = prompts.create_prompt(db, project_id, data, user, made)
        except DomainError as error:
            errors |= form_errors(error)
        else:
            count = len(made)
            return redirect(
                request,
                f"/projects/{project_id}/prompts/{prompt.id}",
                notice=f"Created prompt {prompt.id} with {count} "
                f"response{'' if count == 1 else 's'}.",
            )
    return _list_page(request, db, user, project_id, form=form, errors=errors, status_code=422)


@router.post("/batch")
def add_batch(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    batch: Annotated[common.Text, Form(max_length=MAX_BATCH_BYTES)] = "",
    queue_id: Field = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    get_project_checked(db, project_id)
    # A form sent without choosing a file carries an empty part with no name.
    upload = file if file is not None and file.filename else None
    try:
        chosen_queue = _queue_id(queue_id)
        if chosen_queue is not None and user.role != Role.admin:
            raise PermissionDenied(QUEUES_ADMIN_ONLY, field="queue_id")
        if upload is not None and batch.strip():
            raise InvalidInput("paste lines or upload a file, not both", field="batch")
        text, source = batch, "paste"
        if upload is not None:
            raw = upload.file.read(MAX_BATCH_BYTES + 1)
            if len(raw) > MAX_BATCH_BYTES:
                raise InvalidInput(
                    f"the file is over {MAX_BATCH_BYTES // 1024**2} MiB: split it", field="batch"
                )
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidInput("the file is not UTF-8 text", field="batch") from None
            source = f"upload:{upload.filename}"[:200]
        result = prompt_batches.add_prompt_batch(
            db, project_id, text, user, source=source, queue_id=chosen_queue
        )
    except DomainError as error:
        return _list_page(
            request,
            db,
            user,
            project_id,
            batch=batch,
            batch_queue=queue_id,
            batch_errors=form_errors(error),
            status_code=error.status_code,
        )
    if not result.stored:
        return _list_page(
            request,
            db,
            user,
            project_id,
            batch=batch,
            batch_queue=queue_id,
            batch_result=result,
            status_code=422,
        )
    notice = (
        f"Prompts: {result.prompts_created} new, {result.prompts_existing} already in the "
        f"project, {result.prompts_repeated} repeated in the batch. Responses: "
        f"{result.responses} new, {result.responses_existing} already under their prompt, "
        f"{result.responses_repeated} repeated in the batch."
    )
    if chosen_queue is not None:
        name = queues.get_queue(db, chosen_queue).name
        notice += f" Added {result.tasks} task{'' if result.tasks == 1 else 's'} to {name}"
        if result.tasks_existing:
            notice += f" ({result.tasks_existing} already there)"
        notice += "."
    return redirect(request, f"/projects/{project_id}/prompts", notice=notice)


# --- one prompt -----------------------------------------------------------------------------


def _detail_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    prompt_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    prompt = prompt_library.get_project_prompt(db, project_id, prompt_id)
    found = prompts.list_responses(db, prompt_id)
    return render(
        request,
        "prompts/detail.html",
        {
            "project": get_project_checked(db, project_id),
            "prompt": prompt,
            "responses": found,
            "uses": prompt_library.response_uses(db, [r.id for r in found]),
            "tasks": prompt_library.tasks_of_prompt(db, prompt_id),
            "queues": queues.list_queues(db, project_id),
            "categories": list(PromptCategory),
            "values": values or {},
            "errors": errors or {},
        },
        user=user,
        status_code=status_code,
    )


@router.get("/{prompt_id}")
def show_prompt(
    request: Request, db: SessionDep, user: WebStaff, project_id: int, prompt_id: int
) -> Response:
    return _detail_page(request, db, user, project_id, prompt_id)


@router.post("/{prompt_id}/category")
def set_category(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    prompt_id: int,
    category: Field = "",
) -> Response:
    prompt_library.get_project_prompt(db, project_id, prompt_id)
    if category not in PromptCategory.__members__:
        return _detail_page(
            request,
            db,
            user,
            project_id,
            prompt_id,
            errors={"category": f"{category[:40]!r} is not a category"},
            status_code=422,
        )
    prompt_library.set_category(db, prompt_id, PromptCategory(category))
    return redirect(
        request,
        f"/projects/{project_id}/prompts/{prompt_id}",
        notice=f"Category set to {category.replace('_', ' ')}.",
    )


@router.post("/{prompt_id}/responses")
def add_response(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    prompt_id: int,
    content: Content = "",
    source_name: Field = "",
) -> Response:
    prompt_library.get_project_prompt(db, project_id, prompt_id)
    try:
        data = typed_response(content, source_name)
        added = prompts.add_response(db, prompt_id, data, user)
    except (ValidationError, DomainError) as error:
        return _detail_page(
            request,
            db,
            user,
            project_id,
            prompt_id,
            values={"content": content, "source_name": source_name},
            errors=form_errors(error),
            status_code=_status(error),
        )
    return redirect(
        request,
        f"/projects/{project_id}/prompts/{prompt_id}#response-{added.id}",
        notice=f"Added response {added.id}.",
    )


@router.post("/{prompt_id}/responses/{response_id}/edit")
def edit_response(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    prompt_id: int,
    response_id: int,
    content: Content = "",
) -> Response:
    prompt_library.get_project_prompt(db, project_id, prompt_id)
    try:
        prompt_library.edit_response(db, prompt_id, response_id, ResponseEdit(content=content))
    except (ValidationError, DomainError) as error:
        problem = form_errors(error)
        return _detail_page(
            request,
            db,
            user,
            project_id,
            prompt_id,
            values={f"edit_{response_id}": content},
            errors={f"edit_{response_id}": next(iter(problem.values()))},
            status_code=_status(error),
        )
    return redirect(
        request,
        f"/projects/{project_id}/prompts/{prompt_id}#response-{response_id}",
        notice=f"Saved response {response_id}.",
    )


@router.post("/{prompt_id}/tasks")
def add_to_queue(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    project_id: int,
    prompt_id: int,
    queue_id: Field = "",
) -> Response:
    prompt_library.get_project_prompt(db, project_id, prompt_id)
    try:
        chosen = _queue_id(queue_id)
        if chosen is None:
            raise InvalidInput("choose a queue", field="queue_id")
        task = prompt_library.add_prompt_to_queue(db, project_id, prompt_id, chosen)
    except DomainError as error:
        return _detail_page(
            request,
            db,
            admin,
            project_id,
            prompt_id,
            values={"queue_id": queue_id},
            errors={"queue_id": error.message},
            status_code=error.status_code,
        )
    return redirect(
        request,
        f"/projects/{project_id}/prompts/{prompt_id}",
        notice=f"Added task {task.id} to {queues.get_queue(db, task.queue_id).name}.",
    )
