"""The reward model held against the labelers (audit), and where a response came from (lineage)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.models import ModelRole, ResponseSource, RunKind, RunStatus, SnapshotKind
from app.schemas.queues import MAX_TASK_ITEMS

# --- reward model audit ---------------------------------------------------------------------


class AuditPair(BaseModel):
    """A response pair the labelers' consensus ordered and the reward model scored the other
    way (or equal): `score_gap` is the loser's score less the winner's, so the larger it is,
    the more confidently the model disagrees."""

    task_id: int
    prompt_id: int
    prompt_text: str
    winner_response_id: int
    loser_response_id: int
    winner_text: str
    loser_text: str
    winner_score: float
    loser_score: float
    score_gap: float
    # Labelers who ordered the pair (ties left out), and how many of them put the winner first.
    labelers: int
    agreeing_labelers: int
    # Reliability-weighted share of those labelers' votes for the winner (agreement/consensus).
    support: float | None


class RewardAudit(BaseModel):
    project_id: int
    model_id: int
    model_name: str
    # Response pairs the consensus ordered, and those of them the model scored both sides of.
    judged_pairs: int
    checked_pairs: int
    agreeing_pairs: int
    agreement_rate: float | None
    not_scored_pairs: int
    # Some judged pair lacks a score from this model: a score run would fill it in.
    needs_score_run: bool
    disagreeing_pairs: int
    # The most confident disagreements first, at most the `limit` asked for.
    disagreements: list[AuditPair]


class PairRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner_response_id: int
    loser_response_id: int


class AuditRequeue(BaseModel):
    """Queue pairs for another look: the ones listed, or (pairs omitted) every disagreement."""

    model_config = ConfigDict(extra="forbid")

    queue_id: int
    pairs: list[PairRef] | None = Field(default=None, min_length=1, max_length=MAX_TASK_ITEMS)


class AuditRequeueOut(BaseModel):
    queue_id: int
    created: int
    # Pairs that already had a live task with exactly those two responses in the queue.
    skipped: int
    task_ids: list[int]


# --- lineage --------------------------------------------------------------------------------


class LabelerRows(BaseModel):
    labeler_id: int
    username: str
    rows: int


class GuidelineVersionRows(BaseModel):
    # None: rows made under no guideline version.
    guideline_version_id: int | None
    version: int | None
    rows: int


class SnapshotContents(BaseModel):
    """What a snapshot's train and test files hold, read from its folder."""

    rows: dict[str, int]
    demonstrations: int
    comparisons: int
    pairs: int
    labelers: list[LabelerRows]
    # Rows with no labeler: imports, and consensus rows (one per task, from several labelers).
    rows_without_labeler: int
    guideline_versions: list[GuidelineVersionRows]


class SnapshotLineage(BaseModel):
    id: int
    name: str
    kind: SnapshotKind
    content_hash: str
    row_counts: dict[str, int]
    filters: dict[str, Any]
    path: str
    # None with `missing` set when the folder is gone from the data folder.
    contents: SnapshotContents | None
    missing: str | None = None


class RunLineage(BaseModel):
    id: int
    kind: RunKind
    status: RunStatus
    hyperparameters: dict[str, Any]
    # The run's latest "train" and final "eval" figures.
    metrics: dict[str, Any]
    snapshot: SnapshotLineage | None
    base_model: ModelLineage | None
    # A folder or hub name the run started from when it was not a registered model.
    base_model_ref: str | None
    reward_model: ModelLineage | None


class ModelLineage(BaseModel):
    id: int
    name: str
    role: ModelRole
    path: str | None
    hub_name: str | None
    # The run that trained it; None for a model registered by hand (a base model).
    run: RunLineage | None
    # Set when the walk stops early (a model already seen further down the tree).
    note: str | None = None


class GenerationRun(BaseModel):
    id: int
    kind: RunKind
    status: RunStatus
    hyperparameters: dict[str, Any]


class ResponseLineage(BaseModel):
    response_id: int
    prompt_id: int
    project_id: int
    source: ResponseSource
    content: str
    # An import's origin, e.g. "gpt-3.5-turbo via UltraFeedback".
    source_name: str
    author_id: int | None
    author_username: str | None
    sampling: dict[str, Any] | None
    generation_run: GenerationRun | None
    model: ModelLineage | None


RunLineage.model_rebuild()
