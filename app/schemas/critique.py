"""Principles, critique runs and the workbench's suggestions, as requests and answers.

A critique run's settings follow the other run kinds' schemas (app/schemas/runs.py): unknown
fields are refused and every field says what it does. Its responses come from exactly one
place: a comparison queue's tasks, a preference snapshot (the chosen and rejected responses of
its rows) or a list of response ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models.queues import SuggestionMode
from app.schemas.common import Text
from app.schemas.labeling import MAX_ID

MAX_RESPONSE_IDS = 10_000
MAX_PRINCIPLES = 100
MAX_REQUEST = 4_000


def _stripped(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"a principle needs {what}")
    return value


class PrincipleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    critique_request: Text = Field(min_length=1, max_length=MAX_REQUEST)
    revision_request: Text = Field(min_length=1, max_length=MAX_REQUEST)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _stripped(value, "a name")

    @field_validator("critique_request")
    @classmethod
    def _critique(cls, value: str) -> str:
        return _stripped(value, "a critique request")

    @field_validator("revision_request")
    @classmethod
    def _revision(cls, value: str) -> str:
        return _stripped(value, "a revision request")


class PrincipleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    name: str
    critique_request: str
    revision_request: str
    version: int
    previous_id: int | None
    retired_at: datetime | None
    created_by_id: int | None
    created_at: datetime
    # Revisions made under this very version.
    revisions: int = 0


class CritiqueHyperparameters(BaseModel):
    """A model critiques each response under a principle, then revises it; each revision
    becomes a response and a "revision ≻ original" comparison."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    queue_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Critique the responses of this comparison queue's tasks.",
    )
    response_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RESPONSE_IDS,
        description="Critique these responses of the project.",
    )
    principle_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PRINCIPLES,
        description="The principles to apply (current versions of the project's); left out, "
        "every current principle. The launch records the exact versions it took.",
    )
    principle_choice: Literal["each", "random"] = Field(
        default="each",
        description="each: every response is critiqued and revised under every principle; "
        "random: under one principle drawn per response (seeded), as Constitutional AI does.",
    )
    limit: int | None = Field(
        default=None, ge=1, le=MAX_RESPONSE_IDS, description="Critique at most this many responses."
    )
    max_new_tokens: int = Field(
        default=64, ge=1, le=4096, description="Longest critique, and longest revision, in tokens."
    )
    temperature: float = Field(default=1.0, gt=0, le=10, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the first sample.")

    @field_validator("response_ids", "principle_ids")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(item < 1 for item in value):
            raise ValueError("ids must be positive")
        return None if value is None else list(dict.fromkeys(value))


class RevisionOut(BaseModel):
    response_id: int
    original_response_id: int
    prompt_id: int
    principle_id: int
    principle_name: str
    principle_version: int
    run_id: int
    model_id: int | None
    comparison_id: int
    critique: str
    original: str
    revision: str
    created_at: datetime


class SuggestionModeSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: SuggestionMode


class SuggestionAgreement(BaseModel):
    """How often labelers' rankings agreed with the judge's, for one queue and mode: over the
    response pairs both ordered (no tie in either), the share ordered the same way."""

    mode: Literal["after", "before"]
    # Labeler comparisons made under this mode with a suggestion recorded.
    comparisons: int
    # Response pairs both the labeler and the judge ordered.
    pairs: int
    agreed: int
    rate: float | None


class QueueSuggestions(BaseModel):
    queue_id: int
    mode: SuggestionMode
    by_mode: list[SuggestionAgreement]
