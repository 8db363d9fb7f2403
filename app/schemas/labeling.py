"""What labelers send and receive while working through a queue."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models import AssignmentStatus, DemonstrationOrigin, PromptCategory, QueueKind
from app.schemas.common import Text

MAX_TEXT = 100_000
MAX_COMMENT = 10_000
MAX_NOTE = 2000
MAX_ID = 2**31 - 1

FlagKey = Annotated[Text, Field(min_length=1, max_length=100)]
IdempotencyKey = Annotated[Text, Field(min_length=8, max_length=64)]


class SkipReason(enum.StrEnum):
    unclear_prompt = "unclear_prompt"
    lacks_expertise = "lacks_expertise"
    harmful_content = "harmful_content"
    broken_task = "broken_task"
    other = "other"


SKIP_REASON_LABELS = {
    SkipReason.unclear_prompt: "The prompt is unclear",
    SkipReason.lacks_expertise: "I lack the expertise",
    SkipReason.harmful_content: "Content I should not work on",
    SkipReason.broken_task: "The task is broken (missing or garbled text)",
    SkipReason.other: "Other (say why)",
}


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Text = Field(pattern="^(system|user|assistant)$")
    content: Text = Field(min_length=1, max_length=MAX_TEXT)


class ItemJudgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: a label is what the labeler chose, so true, 7.0 or "7" are refused, not coerced.
    response_id: int = Field(strict=True)
    score: int = Field(strict=True, ge=1, le=7, description="1 (worst) to 7 (best).")
    rank: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        description="1 is best; equal ranks are ties; at most the number of responses judged. "
        "None only when all responses are unacceptable.",
    )
    flags: list[FlagKey] = Field(default_factory=list, max_length=20)
    flag_note: Text = Field(default="", max_length=MAX_NOTE)


class Rewrite(BaseModel):
    """ "Edit as a new candidate": the labeler's better version of one of the shown responses.
    It is stored as a new response and judged better than the original."""

    model_config = ConfigDict(extra="forbid")

    response_id: int
    content: Text = Field(min_length=1, max_length=MAX_TEXT)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a rewrite cannot be empty")
        return value


class ComparisonSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemJudgement] = Field(min_length=2, max_length=9)
    all_unacceptable: bool = False
    comment: Text = Field(default="", max_length=MAX_COMMENT)
    rewrites: list[Rewrite] = Field(default_factory=list, max_length=9)
    idempotency_key: IdempotencyKey | None = None
    idle_seconds: float = Field(default=0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _ranking_complete(self) -> ComparisonSubmit:
        ids = [item.response_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("each response may be judged once")
        ranked = [item.rank is not None for item in self.items]
        if self.all_unacceptable and any(ranked):
            raise ValueError("'all responses are unacceptable' takes no ranking")
        if not self.all_unacceptable and not all(ranked):
            raise ValueError("the ranking is incomplete: give every response a rank")
        if any(item.rank is not None and item.rank > len(self.items) for item in self.items):
            raise ValueError(
                f"a rank runs from 1 to the number of responses judged ({len(self.items)})"
            )
        rewritten = [rewrite.response_id for rewrite in self.rewrites]
        if len(set(rewritten)) != len(rewritten):
            raise ValueError("each response may be rewritten once")
        foreign = sorted(set(rewritten) - set(ids))
        if foreign:
            raise ValueError(
                "a rewrite names a judged response; not judged: " + ", ".join(map(str, foreign))
            )
        return self


class DemonstrationSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The assistant's next turn, optionally followed by further user/assistant turns.
    messages: list[Message] = Field(min_length=1, max_length=50)
    origin: DemonstrationOrigin = DemonstrationOrigin.written
    draft_response_id: int | None = None
    idempotency_key: IdempotencyKey | None = None
    idle_seconds: float = Field(default=0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _turns_alternate(self) -> DemonstrationSubmit:
        roles = [message.role for message in self.messages]
        expected = ["assistant" if index % 2 == 0 else "user" for index in range(len(roles))]
        if roles != expected:
            raise ValueError(
                "turns must alternate assistant, user, assistant, … starting with the assistant"
            )
        if roles[-1] != "assistant":
            raise ValueError("a demonstration ends with an assistant turn")
        if (self.origin == DemonstrationOrigin.edited_draft) != (
            self.draft_response_id is not None
        ):
            raise ValueError("draft_response_id goes with origin 'edited_draft', and only with it")
        return self


class SkipSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: SkipReason
    note: Text = Field(default="", max_length=MAX_NOTE)

    @field_validator("note")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _other_needs_note(self) -> SkipSubmit:
        if self.reason == SkipReason.other and not self.note:
            raise ValueError("say why when the reason is 'other'")
        return self


class ShownResponse(BaseModel):
    """A response as a labeler sees it: no source, no model, no author."""

    id: int
    content: str


class AssignmentOut(BaseModel):
    id: int
    status: AssignmentStatus
    leased_at: datetime
    lease_expires_at: datetime
    queue_id: int
    queue_name: str
    kind: QueueKind
    task_id: int
    prompt_messages: list[Message]
    prompt_category: PromptCategory
    project_id: int
    # A comparison task's responses, in this assignment's shuffled order; empty for a
    # demonstration task.
    responses: list[ShownResponse]
    # The model draft a demonstration task may offer to start from (origin "edited_draft").
    draft_response: ShownResponse | None
    guideline_version: int | None
    # The revision of the labeler's saved work on this task, if any (GET .../draft has it).
    draft_revision: int | None
    # The judge's ranking of the task (groups of tied response ids, best first), given only
    # on a queue that shows it before the label (suggestion mode "before").
    suggestion: list[list[int]] | None = None


class LeaseResult(BaseModel):
    assignment: AssignmentOut | None
    message: str


class SubmitResult(BaseModel):
    assignment_id: int
    label_id: int
    replayed: bool = Field(description="True when this idempotency key was already submitted.")
    pairs: int = 0
    warnings: list[str] = Field(default_factory=list)
    # On a queue that shows the judge's ranking: that ranking (groups of tied response ids,
    # best first), once the label is in.
    suggestion: list[list[int]] | None = None
    rewrites: list[int] = Field(
        default_factory=list, description="Ids of the responses the rewrites became."
    )


class RequeueResult(BaseModel):
    superseded: int


class DraftSave(BaseModel):
    """The workbench's state, saved as the labeler types; checked for shape only on submit."""

    model_config = ConfigDict(extra="forbid")

    content: dict[Text, Any]
    base_revision: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ID,
        description="The revision this edit started from (0: no draft yet). When given and "
        "another tab has saved since, the save is refused (409) instead of overwriting.",
    )


class DraftSaved(BaseModel):
    revision: int
    updated_at: datetime


class DraftOut(DraftSaved):
    task_id: int
    assignment_id: int = Field(description="The assignment it was last saved under.")
    content: dict[str, Any]


class LabelerQueueOut(BaseModel):
    queue_id: int
    queue_name: str
    kind: QueueKind
    priority: int
    project_id: int
    project_name: str
    left: int = Field(description="Tasks you could lease now.")
    done_today: int = Field(description="Labels you submitted here since midnight UTC.")
    held: list[int] = Field(description="Your unexpired assignments here, to resume.")


class GuidelineStatusOut(BaseModel):
    project_id: int
    version: int | None = Field(description="The current published version, if any.")
    published_at: datetime | None
    last_read_version: int | None
    changed_since_read: bool
