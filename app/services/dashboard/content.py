"""What the project's labels are about: prompt categories and the flags labelers raised."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, literal_column, select, true
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem, Prompt, PromptCategory
from app.schemas.dashboard import CategoryCount, FlagCount
from app.services.dashboard.scope import comparisons_of, demonstrations_of
from app.services.prompts import get_project_checked


def category_counts(db: Session, project_id: int) -> list[CategoryCount]:
    """Prompts and labeler labels per prompt category: all ten, in InstructGPT's order."""
    get_project_checked(db, project_id)
    prompts = dict(
        db.execute(
            select(Prompt.category, func.count())
            .where(Prompt.project_id == project_id)
            .group_by(Prompt.category)
        ).all()
    )
    demonstrations = dict(
        db.execute(
            demonstrations_of(project_id, Prompt.category, func.count()).group_by(Prompt.category)
        ).all()
    )
    comparisons = dict(
        db.execute(
            comparisons_of(project_id, Prompt.category, func.count()).group_by(Prompt.category)
        ).all()
    )
    rows = []
    for category in PromptCategory:
        made = (demonstrations.get(category, 0), comparisons.get(category, 0))
        rows.append(
            CategoryCount(
                category=category,
                prompts=prompts.get(category, 0),
                demonstrations=made[0],
                comparisons=made[1],
                labels=sum(made),
            )
        )
    return rows


def _flag_elements(db: Session) -> Any:
    """The flags of each comparison item as a table-valued function with a `value` column."""
    if db.get_bind().dialect.name == "postgresql":
        # jsonb_array_elements_text fails on anything but an array, whatever the WHERE says.
        array = case(
            (func.jsonb_typeof(ComparisonItem.flags) == "array", ComparisonItem.flags),
            else_=literal_column("'[]'::jsonb"),
        )
        return func.jsonb_array_elements_text(array).table_valued("value")
    # SQLite's json_each reads any JSON; only arrays' elements are kept (see the WHERE below).
    return func.json_each(ComparisonItem.flags).table_valued("value")


def _is_array(db: Session) -> Any:
    if db.get_bind().dialect.name == "postgresql":
        return func.jsonb_typeof(ComparisonItem.flags) == "array"
    return func.json_type(ComparisonItem.flags) == "array"


def flag_counts(db: Session, project_id: int) -> list[FlagCount]:
    """Per flag of the label schema (its order, zeros included), then per other flag key
    found on the project's labeler comparisons (by key): how many items carry it and in how
    many comparisons."""
    project = get_project_checked(db, project_id)
    elements = _flag_elements(db)
    # One row per (item, flag), even if an item somehow lists a flag twice.
    flagged = (
        comparisons_of(
            project_id,
            ComparisonItem.comparison_id,
            ComparisonItem.response_id,
            elements.c.value.label("flag"),
        )
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .join(elements, true())
        .where(_is_array(db))
        .distinct()
        .subquery()
    )
    found = {
        str(flag): (items, comparisons)
        for flag, items, comparisons in db.execute(
            select(
                flagged.c.flag,
                func.count(),
                func.count(func.distinct(flagged.c.comparison_id)),
            ).group_by(flagged.c.flag)
        )
    }
    schema = [
        (str(flag["key"]), str(flag.get("label") or flag["key"]))
        for flag in project.label_schema.get("flags", [])
    ]
    rows = [
        FlagCount(
            key=key,
            label=label,
            in_schema=True,
            items=found.get(key, (0, 0))[0],
            comparisons=found.get(key, (0, 0))[1],
        )
        for key, label in schema
    ]
    listed = {key for key, _ in schema}
    rows += [
        FlagCount(key=key, label=key, in_schema=False, items=items, comparisons=comparisons)
        for key, (items, comparisons) in sorted(found.items())
        if key not in listed
    ]
    return rows
