"""The labels a dashboard counts: labeler-made demonstrations and comparisons of a project."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from app.models import Comparison, Demonstration, LabelSource, Prompt


def demonstrations_of(project_id: int, *columns: Any) -> Select[Any]:
    """SELECT columns FROM the project's labeler demonstrations (joined to their Prompt)."""
    return (
        select(*columns)
        .select_from(Demonstration)
        .join(Prompt, Prompt.id == Demonstration.prompt_id)
        .where(
            Prompt.project_id == project_id,
            Demonstration.source == LabelSource.labeler,
            Demonstration.labeler_id.is_not(None),
        )
    )


def comparisons_of(project_id: int, *columns: Any) -> Select[Any]:
    """SELECT columns FROM the project's labeler comparisons (joined to their Prompt), all
    unacceptable ones included, rewrites (counted with the comparison they came from) not."""
    return (
        select(*columns)
        .select_from(Comparison)
        .join(Prompt, Prompt.id == Comparison.prompt_id)
        .where(
            Prompt.project_id == project_id,
            Comparison.source == LabelSource.labeler,
            Comparison.labeler_id.is_not(None),
            Comparison.rewrite_in_comparison_id.is_(None),
        )
    )
