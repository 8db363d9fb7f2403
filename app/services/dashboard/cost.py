"""Spend to date and the cost of a usable preference pair, in the project's own currency."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func
from sqlalchemy.orm import Session

from app.models import Comparison, Pair
from app.schemas.dashboard import CostSummary
from app.services.dashboard.scope import comparisons_of, demonstrations_of
from app.services.prompts import get_project_checked

CENT = Decimal("0.01")
# A pair often costs less than a cent: four places keep it readable and comparable.
PER_PAIR = Decimal("0.0001")


def _spend(count: int, cost: Decimal | None) -> Decimal | None:
    """Nothing bought costs nothing, priced or not; bought at no stated price is unknown."""
    if count == 0:
        return Decimal("0.00")
    if cost is None:
        return None
    return (count * cost).quantize(CENT)


def cost_summary(db: Session, project_id: int) -> CostSummary:
    project = get_project_checked(db, project_id)
    demonstrations = db.scalar(demonstrations_of(project_id, func.count())) or 0
    comparisons = db.scalar(comparisons_of(project_id, func.count())) or 0
    # Every pair a comparison yields is usable, unless the comparison says none of its
    # responses is acceptable (such comparisons are stored without pairs anyway).
    usable_pairs = (
        db.scalar(
            comparisons_of(project_id, func.count(Pair.id))
            .join(Pair, Pair.comparison_id == Comparison.id)
            .where(Comparison.all_unacceptable.is_(False))
        )
        or 0
    )
    demonstration_spend = _spend(demonstrations, project.cost_per_demonstration)
    comparison_spend = _spend(comparisons, project.cost_per_comparison)
    spend_to_date = (
        None
        if demonstration_spend is None or comparison_spend is None
        else demonstration_spend + comparison_spend
    )
    per_pair = (
        (comparison_spend / usable_pairs).quantize(PER_PAIR, rounding=ROUND_HALF_UP)
        if usable_pairs and comparison_spend is not None
        else None
    )
    return CostSummary(
        cost_per_demonstration=project.cost_per_demonstration,
        cost_per_comparison=project.cost_per_comparison,
        demonstrations=demonstrations,
        comparisons=comparisons,
        demonstration_spend=demonstration_spend,
        comparison_spend=comparison_spend,
        spend_to_date=spend_to_date,
        usable_pairs=usable_pairs,
        cost_per_usable_pair=per_pair,
    )
