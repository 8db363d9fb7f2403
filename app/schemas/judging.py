"""Judge runs (a model labels comparison tasks), their prompt templates, and how far a judge
agrees with people: the settings checked before anything is queued, and what the API returns.

Like the other run kinds' schemas, unknown fields are refused and every field says what it
does. The tasks come from exactly one place: a comparison queue (`queue_id`) or the run's
preference snapshot (RunCreate.snapshot_id).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import PromptCategory
from app.schemas.common import Text
from app.schemas.labeling import MAX_ID

JudgeMode = Literal["reward", "generative"]
MAX_TEMPLATE_CHARS = 20_000


class JudgeHyperparameters(BaseModel):
    """A judge model ranks the responses of each task; its rankings become labels of source
    "ai" that name the model, the run and (for a generative judge) the template version."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    queue_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Judge the open tasks of this comparison queue (or give the run a "
        "preference snapshot instead).",
    )
    task_limit: int | None = Field(
        default=None, ge=1, le=100_000, description="Judge at most this many tasks (lowest ids)."
    )
    mode: JudgeMode | None = Field(
        default=None,
        description="Filled in at launch from the judge model's role: a reward model scores "
        "each response (reward), a policy is asked with the project's judge template "
        "(generative).",
    )
    template_version: int | None = Field(
        default=None,
        ge=1,
        description="Generative judges: the version of the project's judge template to ask "
        "with (the latest when left out; the built-in template is saved as version 1 when the "
        "project has none).",
    )
    guideline_version_id: int | None = Field(
        default=None,
        description="Filled in at launch: the published guideline version the labels are "
        "made under (the rubric of a generative judge).",
    )
    max_new_tokens: int = Field(
        default=48, ge=1, le=4096, description="Generative judges: the longest reply, in tokens."
    )
    tie_epsilon: float = Field(
        default=1e-3,
        ge=0,
        le=100,
        description="Reward judges: responses whose rewards differ by less than this (from the "
        "next better one) share a rank.",
    )
    score_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Reward judges: the 1-7 score is 4 + 3·tanh((reward - the task's mean "
        "reward) / score_scale), rounded; a larger scale gives scores nearer 4.",
    )


class JudgeTemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    note: Text = Field(default="", max_length=500)


class JudgeTemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    version: int
    body: str
    note: str
    created_by_id: int | None


class JudgeFigures(BaseModel):
    """A judge against the human consensus on one slice: over the consensus pairs it ordered,
    the share it ordered the same way, with a 95% interval clustered by task."""

    tasks: int
    pairs: int
    agreeing: int
    agreement: float | None
    ci_low: float | None
    ci_high: float | None


class JudgeCategoryFigures(JudgeFigures):
    category: PromptCategory


class JudgeQueueFigures(JudgeFigures):
    queue_id: int
    queue_name: str


class JudgeDisagreement(BaseModel):
    """A consensus pair the judge reversed, with how sure the judge was."""

    task_id: int
    prompt_id: int
    human_winner_response_id: int
    human_loser_response_id: int
    # Labelers who ordered the pair, and the reliability-weighted share that put the winner
    # first.
    labelers: int
    support: float | None
    # The judge's margin for its own (reversed) order: the reward difference for a reward
    # judge, the 1-7 score difference for a generative one (its rank difference when it gave
    # no scores).
    margin: float
    margin_kind: Literal["reward", "score", "rank"]


class JudgeAgreementOut(BaseModel):
    model_id: int
    model_name: str
    mode: JudgeMode
    # The template version for a generative judge; None for a reward judge.
    template_id: int | None
    template_version: int | None
    labels: int
    overall: JudgeFigures
    categories: list[JudgeCategoryFigures]
    queues: list[JudgeQueueFigures]
    disagreements: list[JudgeDisagreement]
    confidence: float = 0.95


class JudgeAgreementReport(BaseModel):
    project_id: int
    queue_id: int | None
    # Consensus pairs at least one labeler ordered, on tasks some judge labelled.
    human_pairs: int
    judges: list[JudgeAgreementOut]


class SendBackTasks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=1000)


class SentBackTasks(BaseModel):
    task_ids: list[int]
