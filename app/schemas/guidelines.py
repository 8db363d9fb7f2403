"""Request and response shapes for a project's versioned guideline."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.schemas.common import Text

if TYPE_CHECKING:
    from app.models import GuidelineVersion

MAX_BODY_LENGTH = 200_000
MAX_NOTE_LENGTH = 500


class GuidelineSave(BaseModel):
    """A new version's text. Saving never edits an existing version; it adds the next one."""

    model_config = ConfigDict(extra="forbid")

    body: Text = Field(max_length=MAX_BODY_LENGTH, description="Markdown.")
    note: Text = Field(default="", max_length=MAX_NOTE_LENGTH, description="What changed, why.")

    @field_validator("body", mode="before")
    @classmethod
    def _line_endings(cls, value: object) -> object:
        # Browsers send CRLF; one line ending keeps "nothing changed", lengths and diffs honest.
        if isinstance(value, str):
            return value.replace("\r\n", "\n").replace("\r", "\n")
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a guideline needs a body")
        return value

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        return value.strip()


class GuidelineVersionSummary(BaseModel):
    """A version without its body, for listings."""

    project_id: int
    version: int
    note: str
    status: Literal["draft", "published"]
    published_at: datetime | None
    created_by_id: int | None
    created_at: datetime

    @classmethod
    def from_model(cls, found: GuidelineVersion) -> GuidelineVersionSummary:
        return cls(**_summary_fields(found))


class GuidelineVersionOut(GuidelineVersionSummary):
    body: str

    @classmethod
    def from_model(cls, found: GuidelineVersion) -> GuidelineVersionOut:
        return cls(**_summary_fields(found), body=found.body)


def _summary_fields(found: GuidelineVersion) -> dict[str, object]:
    return {
        "project_id": found.project_id,
        "version": found.version,
        "note": found.note,
        "status": "draft" if found.published_at is None else "published",
        "published_at": found.published_at,
        "created_by_id": found.created_by_id,
        "created_at": found.created_at,
    }


class GuidelineDiffOut(BaseModel):
    project_id: int
    from_version: int
    to_version: int
    lines: list[str] = Field(
        description="A unified diff (difflib), one line per item, no line endings; "
        "empty when the two bodies are the same."
    )
