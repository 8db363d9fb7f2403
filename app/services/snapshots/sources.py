"""Whose labels a snapshot takes, worked out and put in words when the snapshot is made.

The rule "AI where the judge agrees with people, humans elsewhere" is resolved here, once: the
judge's agreement with the human consensus per prompt category (app/services/judging/
agreement.py) picks the categories whose AI labels are taken, and those categories are stored
with the snapshot's filters, so the snapshot says exactly what it holds however the agreement
moves later.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import JudgeTemplate, Model
from app.schemas.snapshots import SnapshotFilters
from app.services.judging.agreement import category_agreement


def resolve_sources(db: Session, project_id: int, filters: SnapshotFilters) -> SnapshotFilters:
    """The filters with `ai_categories` worked out from the rule (unchanged without one)."""
    if filters.label_sources != "ai_where_agreeing":
        return filters
    assert filters.judge_model_id is not None and filters.min_judge_agreement is not None
    agreement = category_agreement(
        db, project_id, filters.judge_model_id, filters.judge_template_id
    )
    chosen = sorted(
        category.value
        for category, rate in agreement.items()
        if rate is not None and rate >= filters.min_judge_agreement
    )
    return filters.model_copy(update={"ai_categories": chosen})


def _judge(db: Session, filters: SnapshotFilters) -> str:
    if filters.judge_model_id is None:
        return "every judge"
    model = db.get(Model, filters.judge_model_id)
    words = f"judge {model.name if model else filters.judge_model_id}"
    if filters.judge_template_id is not None:
        template = db.get(JudgeTemplate, filters.judge_template_id)
        words += f" (template version {template.version if template else '?'})"
    return words


def sources_in_words(db: Session, filters: SnapshotFilters) -> str:
    """SnapshotFilters' label sources as a sentence, for the snapshot's page and manifest."""
    if filters.label_sources == "human":
        return "People's labels only (labelers' and imported); no AI labels"
    judge = _judge(db, filters)
    if filters.label_sources == "ai":
        return f"AI labels only, of {judge}"
    if filters.label_sources == "both":
        words = f"People's labels and the AI labels of {judge}"
        if (filters.human_weight, filters.ai_weight) != (1, 1):
            words += (
                f"; each human row written {filters.human_weight} times, each AI row "
                f"{filters.ai_weight} times"
            )
        return words
    rule = (
        f"AI labels of {judge} on the prompt categories where it agrees with people's "
        f"consensus at least {filters.min_judge_agreement:g}"
    )
    if not filters.ai_categories:
        return f"{rule}: no category reached it, so people's labels everywhere"
    return f"{rule} ({', '.join(filters.ai_categories)}); people's labels elsewhere"
