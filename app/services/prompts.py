"""Prompts (conversation prefixes ending with a user turn) and their candidate responses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Model, Project, Prompt, Response, ResponseSource, User
from app.schemas.prompts import PromptCreate, ResponseCreate
from app.services.projects import get_project

# Ids are 32-bit integers in the database: a larger one cannot exist, and PostgreSQL refuses
# to compare with it, so lookups treat it as unknown instead of failing.
MAX_ID = 2**31 - 1


def storable_id(value: int) -> bool:
    return -MAX_ID - 1 <= value <= MAX_ID


def get_project_checked(db: Session, project_id: int) -> Project:
    if not storable_id(project_id):
        raise NotFound(f"no project with id {project_id}")
    return get_project(db, project_id)


def prompt_content_hash(messages: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the messages as canonical JSON (sorted keys, no spaces, UTF-8), so the same
    conversation hashes the same however it was written or imported."""
    canonical = json.dumps(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def create_prompt(
    db: Session,
    project_id: int,
    data: PromptCreate,
    acting: User,
    responses: Sequence[ResponseCreate] = (),
) -> Prompt:
    """The prompt and its responses in one commit: all of them or, on any error, none."""
    get_project_checked(db, project_id)
    try:
        prompt = new_prompt(db, project_id, data, acting)
        for response in responses:
            new_response(db, prompt.id, response, acting)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return prompt


def new_prompt(db: Session, project_id: int, data: PromptCreate, acting: User) -> Prompt:
    """Adds a prompt to the session and flushes it (for its id); the caller commits."""
    messages = [message.model_dump() for message in data.messages]
    prompt = Prompt(
        project_id=project_id,
        messages=messages,
        category=data.category,
        source=data.source,
        content_hash=prompt_content_hash(messages),
        created_by_id=acting.id,
    )
    db.add(prompt)
    db.flush()
    return prompt


def list_prompts(db: Session, project_id: int, limit: int = 50, offset: int = 0) -> list[Prompt]:
    get_project_checked(db, project_id)
    query = (
        select(Prompt)
        .where(Prompt.project_id == project_id)
        .order_by(Prompt.id)
        .limit(limit)
        .offset(offset)
    )
    return list(db.scalars(query))


def count_prompts(db: Session, project_id: int) -> int:
    query = select(func.count()).select_from(Prompt).where(Prompt.project_id == project_id)
    return int(db.scalar(query) or 0)


def get_prompt(db: Session, prompt_id: int) -> Prompt:
    prompt = db.get(Prompt, prompt_id) if storable_id(prompt_id) else None
    if prompt is None:
        raise NotFound(f"no prompt with id {prompt_id}")
    return prompt


def add_response(db: Session, prompt_id: int, data: ResponseCreate, acting: User) -> Response:
    get_prompt(db, prompt_id)
    try:
        response = new_response(db, prompt_id, data, acting)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return response


def new_response(db: Session, prompt_id: int, data: ResponseCreate, acting: User) -> Response:
    """Adds a response to the session and flushes it; the caller commits."""
    model_id = data.model_id
    if model_id is not None and (not storable_id(model_id) or db.get(Model, model_id) is None):
        raise InvalidInput(f"no model with id {data.model_id}", field="model_id")
    response = Response(
        prompt_id=prompt_id,
        content=data.content,
        source=data.source,
        source_name=data.source_name,
        # A human response is written by the person adding it; imports have no author here.
        author_id=acting.id if data.source == ResponseSource.human else None,
        model_id=data.model_id,
    )
    db.add(response)
    db.flush()
    return response


def list_responses(db: Session, prompt_id: int) -> list[Response]:
    get_prompt(db, prompt_id)
    query = select(Response).where(Response.prompt_id == prompt_id).order_by(Response.id)
    return list(db.scalars(query))
