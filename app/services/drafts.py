"""Drafts: a labeler's unfinished work on a task, kept on the server as they type.

A draft belongs to a task and a labeler, not to one lease: it survives an expired lease, a
logout and another browser, and is found again when the same labeler leases the task anew.
Submitting or skipping the task deletes it, in the same transaction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import Assignment, AssignmentStatus, Draft, User
from app.models.base import utcnow
from app.schemas.common import json_problem
from app.services.leasing import get_own_assignment

# Generous for a page of scores, flags and a few long rewrites; small enough that autosaving
# every few seconds stays cheap.
MAX_DRAFT_BYTES = 256 * 1024
# An expired lease keeps its draft: the labeler may renew it and go on.
SAVABLE = (AssignmentStatus.active, AssignmentStatus.expired)


def get_draft(db: Session, assignment: Assignment) -> Draft | None:
    """The labeler's draft of this assignment's task, whichever of their leases saved it."""
    return db.get(Draft, (assignment.task_id, assignment.labeler_id))


def save_draft(
    db: Session,
    assignment_id: int,
    labeler: User,
    content: dict[str, Any],
    base_revision: int | None = None,
    *,
    now: datetime | None = None,
) -> Draft:
    """Stores `content` as the next revision. With `base_revision` (0: no draft yet), refuses
    to overwrite a revision saved since, e.g. by another tab."""
    assignment = get_own_assignment(db, assignment_id, labeler)
    if assignment.status not in SAVABLE:
        raise Conflict(
            f"assignment {assignment.id} is {assignment.status.value}; its draft is closed"
        )
    _check_content(content)
    draft = db.scalar(
        select(Draft)
        .where(Draft.task_id == assignment.task_id, Draft.labeler_id == labeler.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    current = draft.revision if draft else 0
    if base_revision is not None and base_revision != current:
        db.rollback()
        raise _stale(current)
    now = now or utcnow()
    if draft is None:
        draft = Draft(task_id=assignment.task_id, labeler_id=labeler.id, revision=1)
        db.add(draft)
    else:
        draft.revision += 1
    draft.assignment_id = assignment.id
    draft.content = content
    draft.updated_at = now
    try:
        db.commit()
    except IntegrityError:
        # Two first saves at once: the other one made the row.
        db.rollback()
        raise _stale(1) from None
    return draft


def delete_draft(db: Session, task_id: int, labeler_id: int) -> None:
    """Part of the caller's transaction: the caller commits."""
    db.execute(delete(Draft).where(Draft.task_id == task_id, Draft.labeler_id == labeler_id))


def _stale(current: int) -> Conflict:
    return Conflict(
        f"another tab saved this draft meanwhile (it is at revision {current}); "
        "reload it before saving again",
        field="base_revision",
    )


def _check_content(content: dict[str, Any]) -> None:
    problem = json_problem(content)
    if problem:
        raise InvalidInput(f"the draft is refused: {problem}", field="content")
    try:
        encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidInput("the draft must be plain JSON", field="content") from error
    size = len(encoded.encode("utf-8"))
    if size > MAX_DRAFT_BYTES:
        raise InvalidInput(
            f"the draft is {size} bytes as JSON; the most is {MAX_DRAFT_BYTES}", field="content"
        )
