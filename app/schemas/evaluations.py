"""Side-by-side human evaluations and the rounds of the loop, as the API and pages see them
(definitions: app/services/evaluations.py and app/services/rounds.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models import RunKind, RunStatus
from app.schemas.common import Text
from app.schemas.generation import MAX_PROMPT_IDS, MAX_SAMPLES
from app.schemas.queues import MAX_OVERLAP


class EvaluationCreate(BaseModel):
    """Model A (the candidate) against model B (the baseline): each held-out prompt is answered
    once by each, and labelers judge the two answers without knowing whose is whose."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Left out: "<A's name> vs <B's name>".
    name: Text | None = Field(default=None, max_length=150)
    model_a_id: int
    model_b_id: int
    # The prompts: a snapshot's held-out ("test") split, or a list of the project's prompts.
    snapshot_id: int | None = None
    prompt_ids: list[int] | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_IDS)
    # Each prompt is answered (by both models) in this many separate tasks.
    repeats: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    # Labelers per task.
    overlap: int = Field(default=1, ge=1, le=MAX_OVERLAP)
    max_new_tokens: int = Field(default=32, ge=1, le=4096)
    temperature: float = Field(default=1.0, gt=0, le=10)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    # Best-of-N as the baseline: B answers `baseline_best_of` times per task and this reward
    # model keeps its best answer, so A must beat B's reranked samples, not just B.
    baseline_best_of: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    reward_model_id: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _one_prompt_source(self) -> EvaluationCreate:
        if (self.snapshot_id is None) == (self.prompt_ids is None):
            raise ValueError("take the prompts from a snapshot's test split or a list of ids")
        if self.prompt_ids is not None and len(set(self.prompt_ids)) != len(self.prompt_ids):
            raise ValueError("prompt_ids lists a prompt twice: use repeats instead")
        if self.baseline_best_of > 1 and self.reward_model_id is None:
            raise ValueError("a best-of-N baseline needs a reward model to pick B's best answer")
        if self.baseline_best_of == 1 and self.reward_model_id is not None:
            raise ValueError("a reward model only picks a best-of-N baseline: set baseline_best_of")
        return self


class EvaluationResult(BaseModel):
    """A's record against B over the labelers' judgements of the evaluation's tasks.

    win_rate = (wins + ties / 2) / judgements; ci_low..ci_high is a Wilson interval on the
    effective number of judgements (judgements of one task are not independent: see
    app/services/evaluations.py). None while nothing has been judged."""

    wins: int
    ties: int
    losses: int
    judgements: int
    tasks_judged: int
    tasks_total: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    effective_judgements: float | None
    confidence: float = 0.95


class EvaluationOut(BaseModel):
    id: int
    project_id: int
    name: str
    model_a_id: int
    model_a_name: str
    model_b_id: int
    model_b_name: str
    queue_id: int
    queue_name: str
    run_id: int | None
    run_status: RunStatus | None
    created_by_id: int | None
    created_at: datetime
    result: EvaluationResult


class RoundRun(BaseModel):
    id: int
    kind: RunKind
    status: RunStatus
    base_model_id: int | None
    output_model_id: int | None
    created_at: datetime


class RoundModel(BaseModel):
    id: int
    name: str
    role: str
    run_id: int


class RoundData(BaseModel):
    """Labels made between the previous round's first policy and this round's first run (for
    round 0: before its first run); comparisons of evaluation queues are held out."""

    since: datetime | None
    until: datetime
    # People's labels (written or imported) and the pairs their comparisons gave.
    demonstrations: int
    comparisons: int
    pairs: int
    # Labels a model made (judge and critique runs' source "ai"), counted apart: they cost
    # compute, not people's time.
    ai_demonstrations: int = 0
    ai_comparisons: int = 0


class HumanWinRate(BaseModel):
    """From the latest side-by-side evaluation of the new policy (A) against its start (B)."""

    evaluation_id: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    judgements: int


class PolicyWinRate(BaseModel):
    """A new policy against the policy its run started from. The two figures are different
    things: people's judgements, and the run's own reward model scoring both policies'
    samples (which a policy can learn to game)."""

    model_id: int
    model_name: str
    run_id: int
    start_model_id: int | None
    start_model_name: str | None
    human: HumanWinRate | None
    reward_model_win_rate: float | None


class RoundOut(BaseModel):
    number: int
    runs: list[RoundRun]
    models: list[RoundModel]
    data: RoundData
    policies: list[PolicyWinRate]
