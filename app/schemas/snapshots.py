"""Request and response shapes for dataset snapshots (rules: app/services/snapshots)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models.training import SnapshotKind
from app.schemas.common import Text

PreferenceSource = Literal["pairs", "consensus"]
# Whether preference rows carry a `margin` column. TRL's RewardTrainer subtracts a `margin`
# column inside its loss whenever one is there (and its collator fails on a null), so it is
# written only when asked for: "score_gap" is the chosen response's score minus the rejected
# one's (app/services/snapshots/preference.py documents the scale), 0.0 where either is unscored.
MarginOption = Literal["none", "score_gap"]
# Whose labels a snapshot takes: people's (labelers' and imported; the default), AI judges'
# (source "ai"), both, or "ai_where_agreeing": a judge's labels on the prompt categories where
# it agrees with the human consensus at least `min_judge_agreement`, people's elsewhere.
LabelSources = Literal["human", "ai", "both", "ai_where_agreeing"]
MAX_SOURCE_WEIGHT = 10


def _ids(value: list[int]) -> list[int]:
    if any(item < 1 for item in value):
        raise ValueError("ids must be positive")
    return sorted(set(value))


class SnapshotFilters(BaseModel):
    """What labels a snapshot takes; stored verbatim (as JSON) in the snapshot row.

    Empty lists mean "no restriction". The date range is on when each label was made (a
    prompt's creation for prompt snapshots): created_from <= created_at < created_to."""

    model_config = ConfigDict(extra="forbid")

    queue_ids: list[int] = Field(default_factory=list, max_length=1000)
    created_from: datetime | None = None
    created_to: datetime | None = None
    guideline_version_ids: list[int] = Field(default_factory=list, max_length=1000)
    # Per task: share of labeler pairs ordering a response pair the same way.
    min_agreement: float | None = Field(default=None, ge=0, le=1)
    exclude_flagged: bool = False
    exclude_gold: bool = False
    labeler_ids: list[int] = Field(default_factory=list, max_length=10000)
    # Labels an admin rejected are left out unless this is set.
    include_rejected: bool = False
    # Critique runs' revisions (app/services/critique): in SFT snapshots as rows of the
    # prompt and the revision (no demonstration, task or labeler), in preference data as
    # "revision ≻ original" pairs of source "ai". Left out unless asked for.
    include_ai_revisions: bool = False
    label_sources: LabelSources = "human"
    # AI labels of this judge model only (and, for a generative judge, this template version).
    judge_model_id: int | None = Field(default=None, ge=1)
    judge_template_id: int | None = Field(default=None, ge=1)
    # With label_sources "both", preference rows only: each row is written this many times
    # (TRL's RewardTrainer and DPOTrainer read no per-row weight column, so a weight is a
    # repeat count; repeats of a prompt's rows stay in its split).
    human_weight: int = Field(default=1, ge=1, le=MAX_SOURCE_WEIGHT)
    ai_weight: int = Field(default=1, ge=1, le=MAX_SOURCE_WEIGHT)
    # With label_sources "ai_where_agreeing": the judge's agreement with the human consensus a
    # prompt category needs for its AI labels to be taken (and its human labels left out).
    min_judge_agreement: float | None = Field(default=None, ge=0, le=1)
    # Worked out when the snapshot is made from the rule above, and stored: the categories
    # whose AI labels were taken. Never given.
    ai_categories: list[Text] = Field(default_factory=list, max_length=20)
    # Share of prompts (not rows) that go to the test split.
    test_fraction: float = Field(default=0.1, ge=0, le=1)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    _queue_ids = field_validator("queue_ids")(classmethod(lambda cls, v: _ids(v)))
    _version_ids = field_validator("guideline_version_ids")(classmethod(lambda cls, v: _ids(v)))
    _labeler_ids = field_validator("labeler_ids")(classmethod(lambda cls, v: _ids(v)))

    @field_validator("created_from", "created_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (for example 2024-05-01T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _range(self) -> SnapshotFilters:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("created_from must be before created_to")
        if self.label_sources != "both" and (self.human_weight, self.ai_weight) != (1, 1):
            raise ValueError(
                "human_weight and ai_weight weigh one source against the other: set "
                'label_sources "both"'
            )
        rule = self.label_sources == "ai_where_agreeing"
        if rule and (self.judge_model_id is None or self.min_judge_agreement is None):
            raise ValueError(
                'label_sources "ai_where_agreeing" needs the judge (judge_model_id) and the '
                "agreement it must reach on a category (min_judge_agreement)"
            )
        if not rule and self.min_judge_agreement is not None:
            raise ValueError('min_judge_agreement is for label_sources "ai_where_agreeing"')
        if self.label_sources == "human" and (
            self.judge_model_id is not None or self.judge_template_id is not None
        ):
            raise ValueError("judge_model_id chooses AI labels, and label_sources is human")
        if self.judge_template_id is not None and self.judge_model_id is None:
            raise ValueError("judge_template_id needs the judge model (judge_model_id)")
        return self


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    kind: SnapshotKind
    # Preference snapshots only: every labeler's pairs, or one row per consensus pair.
    source: PreferenceSource | None = None
    # Preference snapshots only; "none" (no margin column) unless asked for.
    margin: MarginOption | None = None
    filters: SnapshotFilters = Field(default_factory=SnapshotFilters)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a snapshot needs a name")
        return value.strip()

    @model_validator(mode="after")
    def _source(self) -> SnapshotCreate:
        if self.kind == SnapshotKind.preference and self.source is None:
            self.source = "pairs"
        if self.kind != SnapshotKind.preference and self.source is not None:
            raise ValueError("source applies to preference snapshots only")
        if self.kind == SnapshotKind.preference and self.margin is None:
            self.margin = "none"
        if self.kind != SnapshotKind.preference and self.margin is not None:
            raise ValueError("margin applies to preference snapshots only")
        return self


class SnapshotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    name: str
    kind: SnapshotKind
    filters: dict[str, Any]
    content_hash: str
    row_counts: dict[str, int]
    path: str
    created_by_id: int | None
    superseded_by_id: int | None
    created_at: datetime


class ExportOut(BaseModel):
    """A raw-judgement or KTO export: files only, no snapshot row."""

    kind: Literal["raw", "kto"]
    project_id: int
    filters: dict[str, Any]
    content_hash: str
    row_counts: dict[str, int]
    path: str
