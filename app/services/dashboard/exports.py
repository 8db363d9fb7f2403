"""The dashboard's tables as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from app.schemas.agreement import AgreementPoint
from app.schemas.dashboard import (
    CategoryCount,
    CostSummary,
    FlagCount,
    LabelerDashboardRow,
    QueueDashboardRow,
)

LABELER_COLUMNS = (
    "labeler_id",
    "username",
    "demonstrations",
    "comparisons",
    "labels",
    "median_seconds",
    "submitted",
    "skipped",
    "skip_rate",
    "pairwise_agreement",
    "agreement_pairs",
    "gold_pairs",
    "gold_accuracy",
)
CATEGORY_COLUMNS = ("category", "prompts", "demonstrations", "comparisons", "labels")
FLAG_COLUMNS = ("key", "label", "in_schema", "items", "comparisons")
QUEUE_COLUMNS = (
    "queue_id",
    "name",
    "kind",
    "is_paused",
    "tasks",
    "required",
    "done",
    "in_progress",
    "left",
    "per_hour",
    "eta_seconds",
)
AGREEMENT_COLUMNS = ("day", "pairwise_agreement", "agreeing_pairs", "labeler_pairs")
COST_FIELDS = (
    "cost_per_demonstration",
    "cost_per_comparison",
    "demonstrations",
    "comparisons",
    "demonstration_spend",
    "comparison_spend",
    "spend_to_date",
    "usable_pairs",
    "cost_per_usable_pair",
)


def cell(value: object) -> object:
    """A value for a CSV cell: empty for None, enums by value, and text that a spreadsheet
    would run as a formula (a username or flag label may start with "=") made plain text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    value = getattr(value, "value", value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return out.getvalue()


def labelers_csv(rows: Sequence[LabelerDashboardRow]) -> str:
    return _table(
        LABELER_COLUMNS, ([getattr(row, name) for name in LABELER_COLUMNS] for row in rows)
    )


def categories_csv(rows: Sequence[CategoryCount]) -> str:
    return _table(
        CATEGORY_COLUMNS, ([getattr(row, name) for name in CATEGORY_COLUMNS] for row in rows)
    )


def flags_csv(rows: Sequence[FlagCount]) -> str:
    return _table(FLAG_COLUMNS, ([getattr(row, name) for name in FLAG_COLUMNS] for row in rows))


def queues_csv(rows: Sequence[QueueDashboardRow]) -> str:
    return _table(
        QUEUE_COLUMNS,
        (
            [row.queue_id, row.name, row.kind, row.is_paused]
            + [getattr(row.progress, name) for name in QUEUE_COLUMNS[4:]]
            for row in rows
        ),
    )


def agreement_over_time_csv(points: Sequence[AgreementPoint]) -> str:
    return _table(
        AGREEMENT_COLUMNS,
        (
            [
                point.start.isoformat(),
                point.pairwise_agreement,
                point.agreeing_pairs,
                point.labeler_pairs,
            ]
            for point in points
        ),
    )


def cost_csv(cost: CostSummary) -> str:
    """One figure a line (name, value): empty where a cost is not set."""
    return _table(("figure", "value"), ([name, getattr(cost, name)] for name in COST_FIELDS))


def csv_name(project_id: int, table: str) -> str:
    return f"project-{project_id}-{table}.csv"
