"""SFT rows (a prompt's turns followed by a demonstration's) and prompt-only rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.models import Demonstration, Prompt, Queue, Response, ResponseRevision, Task
from app.schemas.snapshots import SnapshotFilters
from app.services.snapshots.filters import label_conditions
from app.services.snapshots.formats import (
    PROMPTS,
    SFT,
    Chunk,
    assistant,
    chunk_from_rows,
    in_test,
    turns,
)

BATCH = 5_000


def sft_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    query = (
        select(
            Demonstration.id,
            Demonstration.messages,
            Demonstration.task_id,
            Demonstration.labeler_id,
            Demonstration.guideline_version_id,
            Prompt.id.label("prompt_id"),
            Prompt.messages.label("prompt_messages"),
            Prompt.content_hash,
        )
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .outerjoin(Task, Task.id == Demonstration.task_id)
        .where(*label_conditions(Demonstration, project_id, filters))
        .order_by(Demonstration.id)
    )
    result = db.execute(query, execution_options={"yield_per": BATCH})
    for found in result.partitions():
        rows: list[dict[str, Any]] = [
            {
                "messages": turns(row.prompt_messages) + turns(row.messages),
                "prompt_id": row.prompt_id,
                "demonstration_id": row.id,
                "task_id": row.task_id,
                "labeler_id": row.labeler_id,
                "guideline_version_id": row.guideline_version_id,
            }
            for row in found
        ]
        test = [in_test(filters.seed, row.content_hash, filters.test_fraction) for row in found]
        yield chunk_from_rows(rows, SFT, test)
    if filters.include_ai_revisions:
        yield from revision_chunks(db, project_id, filters)


def revision_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    """Critique runs' revisions as SFT rows: the prompt's turns and the revision, with no
    demonstration, task, labeler or guideline version. Filters on those leave them all out
    (they have none), as they leave out a demonstration that has none."""
    if filters.queue_ids or filters.labeler_ids or filters.guideline_version_ids:
        return
    query = (
        select(
            Response.content,
            Prompt.id.label("prompt_id"),
            Prompt.messages.label("prompt_messages"),
            Prompt.content_hash,
        )
        .select_from(ResponseRevision)
        .join(Response, Response.id == ResponseRevision.response_id)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project_id)
        .order_by(ResponseRevision.response_id)
    )
    if filters.created_from is not None:
        query = query.where(ResponseRevision.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(ResponseRevision.created_at < filters.created_to)
    # exclude_gold keeps them, as it keeps every label of no task (filters.label_conditions).
    result = db.execute(query, execution_options={"yield_per": BATCH})
    for found in result.partitions():
        rows: list[dict[str, Any]] = [
            {
                "messages": turns(row.prompt_messages) + assistant(row.content),
                "prompt_id": row.prompt_id,
                "demonstration_id": None,
                "task_id": None,
                "labeler_id": None,
                "guideline_version_id": None,
            }
            for row in found
        ]
        test = [in_test(filters.seed, row.content_hash, filters.test_fraction) for row in found]
        yield chunk_from_rows(rows, SFT, test)


def prompt_chunks(db: Session, project_id: int, filters: SnapshotFilters) -> Iterator[Chunk]:
    """The project's prompts; with queue ids, those some task of those queues shows; without
    gold, none that a gold task shows (gold prompts are for measuring, not for training)."""
    query = select(Prompt.id, Prompt.messages, Prompt.content_hash).where(
        Prompt.project_id == project_id
    )
    if filters.queue_ids:
        query = query.where(
            exists().where(Task.prompt_id == Prompt.id, Task.queue_id.in_(filters.queue_ids))
        )
    if filters.exclude_gold:
        gold = (
            exists()
            .where(Task.prompt_id == Prompt.id, Task.is_gold.is_(True))
            .where(Queue.id == Task.queue_id, Queue.project_id == project_id)
        )
        query = query.where(~gold)
    if filters.created_from is not None:
        query = query.where(Prompt.created_at >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(Prompt.created_at < filters.created_to)
    result = db.execute(query.order_by(Prompt.id), execution_options={"yield_per": BATCH})
    for found in result.partitions():
        rows: list[dict[str, Any]] = [
            {"prompt": turns(row.messages), "prompt_id": row.id} for row in found
        ]
        test = [in_test(filters.seed, row.content_hash, filters.test_fraction) for row in found]
        yield chunk_from_rows(rows, PROMPTS, test)
