"""Which filters apply to which selection, checking them against the project, and turning them
into SQL conditions.

A filter that cannot apply to what is selected is an error, not silently ignored: a
researcher who asks for "no flagged rows" in an SFT snapshot would otherwise believe
demonstrations had been screened for flags (they carry none).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import (
    Comparison,
    Demonstration,
    GuidelineVersion,
    JudgeTemplate,
    LabelSource,
    Model,
    Prompt,
    Queue,
    Task,
    User,
)
from app.models.critique import REVISION_SOURCE_NAME
from app.schemas.snapshots import SnapshotFilters
from app.services.agreement.loading import load_ratings
from app.services.agreement.metrics import pairwise_agreement_by
from app.services.agreement.ratings import Ratings
from app.services.projects import get_project
from app.services.reviews import comparison_not_rejected, demonstration_not_rejected

ALL = frozenset(
    {
        "queue_ids",
        "created_from",
        "created_to",
        "guideline_version_ids",
        "min_agreement",
        "exclude_flagged",
        "exclude_gold",
        "labeler_ids",
        "include_rejected",
        "include_ai_revisions",
        "label_sources",
        "judge_model_id",
        "judge_template_id",
        "human_weight",
        "ai_weight",
        "min_judge_agreement",
    }
)
# Weights repeat preference rows; the rule reads a judge's agreement on comparisons.
PAIRS_ONLY = frozenset({"human_weight", "ai_weight", "min_judge_agreement"})
# What each selection can filter on, and why the rest cannot apply.
APPLIES: dict[str, tuple[frozenset[str], str]] = {
    "sft": (
        ALL - {"min_agreement", "exclude_flagged"} - PAIRS_ONLY,
        "demonstrations carry no flags and no agreement",
    ),
    "prompts": (
        frozenset({"queue_ids", "created_from", "created_to", "exclude_gold"}),
        "a prompts snapshot takes no labels",
    ),
    # The revisions' pairs belong to no task, so a consensus of tasks never holds them.
    "pairs": (ALL, ""),
    "consensus": (
        frozenset({"queue_ids", "min_agreement", "exclude_flagged", "exclude_gold"}),
        "a consensus is made from all of a task's judgements; use source 'pairs' to select "
        "judgements by labeler, guideline version or date",
    ),
    "raw": (ALL - {"human_weight", "ai_weight"}, "an export's rows are not weighted"),
    "kto": (ALL - {"human_weight", "ai_weight"}, "an export's rows are not weighted"),
}


DEFAULTS = SnapshotFilters().model_dump()


def active_filters(filters: SnapshotFilters) -> set[str]:
    values = filters.model_dump()
    return {name for name in ALL if values[name] != DEFAULTS[name]}


def check_filters(db: Session, project_id: int, filters: SnapshotFilters, selection: str) -> None:
    """NotFound for a missing project; InvalidInput for a filter that cannot apply or names
    a queue, guideline version or labeler that is not there."""
    get_project(db, project_id)
    allowed, why = APPLIES[selection]
    if selection == "sft":
        for name in sorted(active_filters(filters) & PAIRS_ONLY):
            raise InvalidInput(
                f"{name} does not apply here: only preference pairs are weighted or chosen by a "
                "judge's agreement",
                field=f"filters.{name}",
            )
    for name in sorted(active_filters(filters) - allowed):
        raise InvalidInput(f"{name} does not apply here: {why}", field=f"filters.{name}")
    _all_found(
        db,
        filters.queue_ids,
        select(Queue.id).where(Queue.project_id == project_id, Queue.id.in_(filters.queue_ids)),
        f"queue in project {project_id}",
        "filters.queue_ids",
    )
    _all_found(
        db,
        filters.guideline_version_ids,
        select(GuidelineVersion.id).where(
            GuidelineVersion.project_id == project_id,
            GuidelineVersion.id.in_(filters.guideline_version_ids),
        ),
        f"guideline version in project {project_id}",
        "filters.guideline_version_ids",
    )
    _check_sources(db, project_id, filters, selection)
    _all_found(
        db,
        filters.labeler_ids,
        select(User.id).where(User.id.in_(filters.labeler_ids)),
        "user",
        "filters.labeler_ids",
    )


def _check_sources(db: Session, project_id: int, filters: SnapshotFilters, selection: str) -> None:
    if filters.ai_categories:
        raise InvalidInput(
            "ai_categories is worked out from the rule when the snapshot is made: leave it out",
            field="filters.ai_categories",
        )
    if filters.label_sources == "ai_where_agreeing" and selection != "pairs":
        raise InvalidInput(
            'label_sources "ai_where_agreeing" does not apply here: the judge\'s agreement is '
            "measured on compared pairs",
            field="filters.label_sources",
        )
    if filters.judge_model_id is not None:
        model = db.get(Model, filters.judge_model_id)
        if model is None or (model.project_id not in (None, project_id)):
            raise InvalidInput(
                f"no model with id {filters.judge_model_id} in project {project_id}",
                field="filters.judge_model_id",
            )
    if filters.judge_template_id is not None:
        template = db.get(JudgeTemplate, filters.judge_template_id)
        if template is None or template.project_id != project_id:
            raise InvalidInput(
                f"no judge template with id {filters.judge_template_id} in project {project_id}",
                field="filters.judge_template_id",
            )


def source_condition(
    label: type[Comparison] | type[Demonstration], filters: SnapshotFilters
) -> ColumnElement[bool] | None:
    """Whose labels are taken (SnapshotFilters.label_sources); None: everyone's."""
    ai = label.source == LabelSource.ai
    chosen = [ai]
    if filters.judge_model_id is not None:
        chosen.append(label.model_id == filters.judge_model_id)
    if filters.judge_template_id is not None and label is Comparison:
        chosen.append(Comparison.judge_template_id == filters.judge_template_id)
    judge = and_(*chosen)
    human = label.source != LabelSource.ai
    if filters.label_sources == "human":
        return human
    if filters.label_sources == "ai":
        return judge
    if filters.label_sources == "both":
        return or_(human, judge) if len(chosen) > 1 else None
    # ai_where_agreeing: the categories were worked out when the snapshot was made.
    categories = sorted(filters.ai_categories)
    return or_(
        and_(judge, Prompt.category.in_(categories)),
        and_(human, Prompt.category.not_in(categories)),
    )


def _all_found(db: Session, wanted: list[int], query: Any, what: str, field: str) -> None:
    if not wanted:
        return
    found = set(db.scalars(query))
    missing = [item for item in wanted if item not in found]
    if missing:
        raise InvalidInput(f"no {what} with id {missing[0]}", field=field)


def label_conditions(
    label: type[Comparison] | type[Demonstration], project_id: int, filters: SnapshotFilters
) -> list[ColumnElement[bool]]:
    """WHERE conditions on labels of a project, for a query joining Prompt on the label's
    prompt and outer-joining Task on its task (labels without a task have no queue and are
    never gold)."""
    conditions: list[ColumnElement[bool]] = [Prompt.project_id == project_id]
    sources = source_condition(label, filters)
    if sources is not None:
        if label is Comparison and filters.include_ai_revisions:
            # Asked for, critique revisions come whoever's labels are taken otherwise.
            sources = or_(sources, is_ai_revision())
        conditions.append(sources)
    if filters.queue_ids:
        conditions.append(Task.queue_id.in_(filters.queue_ids))
    if filters.created_from is not None:
        conditions.append(label.created_at >= filters.created_from)
    if filters.created_to is not None:
        conditions.append(label.created_at < filters.created_to)
    if filters.guideline_version_ids:
        conditions.append(label.guideline_version_id.in_(filters.guideline_version_ids))
    if filters.labeler_ids:
        conditions.append(label.labeler_id.in_(filters.labeler_ids))
    if filters.exclude_gold:
        conditions.append(or_(Task.id.is_(None), Task.is_gold.is_(False)))
    if not filters.include_rejected:
        conditions.append(
            comparison_not_rejected() if label is Comparison else demonstration_not_rejected()
        )
    if label is Comparison and not filters.include_ai_revisions:
        conditions.append(~is_ai_revision())
    return conditions


def is_ai_revision() -> ColumnElement[bool]:
    """A critique run's "revision ≻ original" comparison (narrowly: not a judge's labels)."""
    return (Comparison.source == LabelSource.ai) & (Comparison.source_name == REVISION_SOURCE_NAME)


def agreeing_tasks(db: Session, project_id: int, min_agreement: float) -> set[int]:
    """Tasks whose pairwise agreement (agreeing labeler pairs / labeler pairs, over the
    response pairs two or more labelers ordered) is at least `min_agreement`. A task with no
    two labelers ordering the same pair has no agreement to show and is left out."""
    ratings = load_ratings(db, project_ids=[project_id])
    by_task = Ratings(
        ratings.task,
        ratings.labeler,
        ratings.response,
        ratings.rank,
        ratings.score,
        {"task": ratings.task},
    )
    return {
        task
        for task, found in pairwise_agreement_by(by_task, "task").items()
        if found.rate is not None and found.rate >= min_agreement
    }
