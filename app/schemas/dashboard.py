"""A project's dashboard as the API and the page show it (definitions: app/services/dashboard)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from app.models import PromptCategory, QueueKind
from app.schemas.agreement import AgreementPoint
from app.schemas.queues import QueueProgress


class QueueDashboardRow(BaseModel):
    queue_id: int
    name: str
    kind: QueueKind
    is_paused: bool
    progress: QueueProgress


class LabelerDashboardRow(BaseModel):
    labeler_id: int
    username: str
    demonstrations: int
    comparisons: int
    # demonstrations + comparisons
    labels: int
    # Median time_spent_seconds over this labeler's demonstrations and comparisons that
    # recorded one; None when none did.
    median_seconds: float | None
    # Assignments of the project's queues: submitted (or since superseded) and skipped.
    submitted: int
    skipped: int
    # skipped / (submitted + skipped); None when both are 0.
    skip_rate: float | None
    # From the agreement report (app/services/agreement): agreement with the other labelers
    # on shared response pairs, and accuracy on gold tasks.
    pairwise_agreement: float | None
    agreement_pairs: int
    gold_pairs: int
    gold_accuracy: float | None


class CategoryCount(BaseModel):
    category: PromptCategory
    prompts: int
    demonstrations: int
    comparisons: int
    # demonstrations + comparisons
    labels: int


class FlagCount(BaseModel):
    key: str
    # The label schema's wording; the key itself for a flag the schema no longer lists.
    label: str
    in_schema: bool
    # Comparison items (one response in one comparison) carrying the flag.
    items: int
    # Comparisons with at least one item carrying it.
    comparisons: int


class CostSummary(BaseModel):
    """Spend on labeler labels (imports cost nothing here). Money is a string in JSON."""

    cost_per_demonstration: Decimal | None
    cost_per_comparison: Decimal | None
    demonstrations: int
    comparisons: int
    # count x cost; 0 when the count is 0; None when labels were made but no cost is set.
    demonstration_spend: Decimal | None
    comparison_spend: Decimal | None
    # The two spends added up; None when either is unknown.
    spend_to_date: Decimal | None
    # Pairs of labeler comparisons not marked all unacceptable.
    usable_pairs: int
    # comparison_spend / usable_pairs to 4 places; None without pairs or without a spend.
    cost_per_usable_pair: Decimal | None


class ProjectDashboard(BaseModel):
    project_id: int
    queues: list[QueueDashboardRow]
    # Pairwise agreement of the whole project, and per UTC day.
    pairwise_agreement: float | None
    agreement_over_time: list[AgreementPoint]
    labelers: list[LabelerDashboardRow]
    categories: list[CategoryCount]
    flags: list[FlagCount]
    cost: CostSummary
