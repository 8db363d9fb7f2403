"""Everything the workbench page shows for one assignment, gathered in one place."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    SuggestionMode,
    Task,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import SKIP_REASON_LABELS
from app.security import sign
from app.services import assignments, drafts, guideline_reads, suggestions
from app.web.workbench.forms import FormValues, letters, turn_roles, written_turns

# Time away from the page (between the last save and a reload) counts as idle beyond this,
# the same threshold the page uses for time without input.
IDLE_AFTER_SECONDS = 60
# How much of a response its row in the ranking list shows, as a reminder, without the
# markdown punctuation that would only clutter one line.
EXCERPT = 90
_MARKUP = re.compile(r"```\w*|[*_`#>|]+")


@dataclass(frozen=True)
class Shown:
    """A response as the labeler sees it: a letter and its text, never its source."""

    letter: str
    content: str


@dataclass(frozen=True)
class RankRow:
    letter: str
    place: str
    # Shares its place with the row above.
    tied: bool
    excerpt: str


def _place(raw: str, count: int) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= count else None


@dataclass
class TaskView:
    assignment: Assignment
    task: Task
    queue: Queue
    project: Project
    prompt: Prompt
    responses: list[Response]
    draft_response: Response | None
    guideline: guideline_reads.GuidelineStatus
    values: FormValues
    revision: int
    state: str
    seconds_left: int
    idempotency_key: str
    errors: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    flash: str | None = None
    # What the skip form held when it was refused.
    skip_values: FormValues = field(default_factory=FormValues)
    # The judge's ranking in this page's letters, shown while ranking only on a queue whose
    # suggestion mode is "before" (never in "after": that would anchor the measured label).
    suggestion: str | None = None

    @property
    def shown(self) -> list[Shown]:
        names = letters(len(self.responses))
        return [
            Shown(letter, response.content)
            for letter, response in zip(names, self.responses, strict=True)
        ]

    @property
    def flags(self) -> list[dict[str, str]]:
        return list(self.project.label_schema.get("flags", []))

    @property
    def turns(self) -> list[tuple[str, str]]:
        texts = written_turns(self.values)
        return list(zip(turn_roles(len(texts)), texts, strict=True))

    @property
    def ranking(self) -> list[RankRow]:
        """The ranking list as last left: by place when every response has one, else A, B, …"""
        names = letters(len(self.responses))
        places = {letter: _place(self.values.get(f"rank_{letter}"), len(names)) for letter in names}
        complete = all(place is not None for place in places.values())
        order = sorted(names, key=lambda letter: places[letter] or 0) if complete else names
        texts = dict(zip(names, (response.content for response in self.responses), strict=True))
        rows = []
        for index, letter in enumerate(order):
            tied = complete and index > 0 and places[letter] == places[order[index - 1]]
            excerpt = " ".join(_MARKUP.sub(" ", texts[letter]).split())
            excerpt = excerpt if len(excerpt) <= EXCERPT else excerpt[: EXCERPT - 1] + "…"
            rows.append(RankRow(letter, self.values.get(f"rank_{letter}"), tied, excerpt))
        return rows

    @property
    def ranking_summary(self) -> str:
        rows = self.ranking
        if not rows or any(not row.place for row in rows):
            return "Not ranked yet."
        text = rows[0].letter
        for row in rows[1:]:
            text += (" = " if row.tied else " > ") + row.letter
        return text

    @property
    def preview_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": text} for role, text in self.turns if text.strip()]

    def template_context(self) -> dict[str, Any]:
        return {
            "view": self,
            "is_comparison": self.queue.kind == QueueKind.comparison,
            "skip_reasons": [(reason.value, label) for reason, label in SKIP_REASON_LABELS.items()],
        }


def idempotency_key(request: Request, assignment_id: int) -> str:
    """Fixed per assignment and unguessable, so a resent or reloaded form reuses it and no
    other form can claim it."""
    secret = request.app.state.settings.resolved_secret_key
    return "wb-" + sign(secret, f"workbench-label:{assignment_id}")[:40]


def lease_state(assignment: Assignment, now: datetime) -> str:
    """open, expired, or the status that ended the assignment (submitted, skipped …)."""
    if assignments.lease_has_expired(assignment, now):
        return "expired"
    if assignment.status == AssignmentStatus.active:
        return "open"
    return assignment.status.value


def _restored(assignment: Assignment, draft: Any, now: datetime) -> FormValues:
    if draft is None:
        return FormValues()
    values = FormValues.from_draft(draft.content) or FormValues()
    if draft.assignment_id != assignment.id:
        # Idle time belongs to a lease; a new lease restarts the clock from zero.
        return FormValues({**_as_dict(values), "idle_seconds": ["0"]})
    try:
        idle = max(0.0, float(values.get("idle_seconds") or 0))
    except ValueError:
        idle = 0.0
    away = (now - draft.updated_at).total_seconds() - IDLE_AFTER_SECONDS
    idle += max(0.0, away)
    return FormValues({**_as_dict(values), "idle_seconds": [f"{idle:.0f}"]})


def _as_dict(values: FormValues) -> dict[str, list[str]]:
    return values.as_draft()["form"]


def task_view(
    request: Request,
    db: Session,
    assignment: Assignment,
    user: User,
    *,
    values: FormValues | None = None,
    errors: dict[str, str] | None = None,
    warnings: list[str] | None = None,
    flash: str | None = None,
) -> TaskView:
    now = utcnow()
    task, queue, prompt, responses = assignments.assignment_view(db, assignment)
    project = db.get(Project, queue.project_id)
    assert project is not None
    draft = drafts.get_draft(db, assignment)
    shown = responses if queue.kind == QueueKind.comparison else []
    return TaskView(
        assignment=assignment,
        task=task,
        queue=queue,
        project=project,
        prompt=prompt,
        responses=shown,
        draft_response=assignments.draft_response(db, task)
        if queue.kind == QueueKind.demonstration
        else None,
        guideline=guideline_reads.current_for_labeler(db, user, project.id),
        values=values if values is not None else _restored(assignment, draft, now),
        revision=draft.revision if draft else 0,
        state=lease_state(assignment, now),
        # Rounded up, so the page never declares a lease over before the server does.
        seconds_left=max(0, math.ceil((assignment.lease_expires_at - now).total_seconds())),
        idempotency_key=idempotency_key(request, assignment.id),
        errors=errors or {},
        warnings=warnings or [],
        flash=flash,
        suggestion=_suggestion_before(db, queue, task, shown),
    )


def _suggestion_before(db: Session, queue: Queue, task: Task, shown: list[Response]) -> str | None:
    if queue.suggestion_mode != SuggestionMode.before or not shown:
        return None
    judge = suggestions.task_suggestion(db, task.id)
    if not judge:
        return None
    names = dict(zip((r.id for r in shown), letters(len(shown)), strict=True))
    return suggestions.ranking_words(judge, names)


def after_submit_words(db: Session, comparison_id: int, shown: list[Response]) -> str:
    """What the labeler reads once a label is in, on a queue that shows the judge's ranking:
    the ranking in the letters they saw, and how far theirs agreed. Empty when the label has
    no recorded suggestion."""
    found = suggestions.measured(db, comparison_id)
    if found is None:
        return ""
    names = dict(zip((r.id for r in shown), letters(len(shown)), strict=True))
    ranking = suggestions.ranking_words(found.judge, names)
    words = f"The judge ranked the task you submitted {ranking}"
    if found.pairs:
        words += f"; you agreed on {found.agreed} of {found.pairs} pairs"
    return words + "."
