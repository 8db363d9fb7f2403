"""A project's dashboard page (admins and researchers) and its tables as CSV.

The per-labeler CSV names people, so only admins download it, as on the agreement page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.deps import SessionDep, WebAdmin, WebStaff
from app.models import PromptCategory
from app.schemas import common
from app.services import dashboard
from app.services.agreement.service import agreement_over_time
from app.services.dashboard import exports
from app.services.prompts import get_project_checked
from app.web.charts import over_time_chart, progress_chart
from app.web.rendering import render

router = APIRouter(prefix="/projects")
Row = TypeVar("Row")

CATEGORY_NAMES = {
    PromptCategory.generation: "Generation",
    PromptCategory.open_qa: "Open QA",
    PromptCategory.brainstorming: "Brainstorming",
    PromptCategory.chat: "Chat",
    PromptCategory.rewrite: "Rewrite",
    PromptCategory.summarization: "Summarization",
    PromptCategory.classification: "Classification",
    PromptCategory.closed_qa: "Closed QA",
    PromptCategory.extraction: "Extraction",
    PromptCategory.other: "Other",
}


def with_counts(rows: Sequence[Row], *fields: str, show_all: bool) -> tuple[list[Row], int]:
    """The rows with any of these counts above zero (all of them when asked), and how many
    were left out: ten categories and ten flags mostly at zero hid the few that mattered."""
    if show_all:
        return list(rows), 0
    kept = [row for row in rows if any(getattr(row, field) for field in fields)]
    return kept, len(rows) - len(kept)


def csv_response(body: str, project_id: int, table: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": (f'attachment; filename="{exports.csv_name(project_id, table)}"')
        },
    )


@router.get("/{project_id}/dashboard")
def dashboard_page(
    request: Request, db: SessionDep, user: WebStaff, project_id: int, show: common.Text = ""
) -> Response:
    project = get_project_checked(db, project_id)
    found = dashboard.project_dashboard(db, project_id)
    show_all = show == "all"
    categories, hidden_categories = with_counts(
        found.categories, "prompts", "demonstrations", "comparisons", "labels", show_all=show_all
    )
    flags, hidden_flags = with_counts(found.flags, "items", "comparisons", show_all=show_all)
    return render(
        request,
        "dashboard/page.html",
        {
            "project": project,
            "dashboard": found,
            "category_names": CATEGORY_NAMES,
            "progress_chart": progress_chart([(row.name, row.progress) for row in found.queues]),
            "agreement_chart": over_time_chart(found.agreement_over_time),
            # Tables, not bar charts, for categories and flags: a table holds every count
            # (prompts, demonstrations, comparisons) where a chart drew one of them again.
            "categories": categories,
            "hidden_categories": hidden_categories,
            "flags": flags,
            "hidden_flags": hidden_flags,
            "show_all": show_all,
            "csv_base": f"/projects/{project_id}/dashboard",
        },
        user=user,
    )


@router.get("/{project_id}/dashboard/queues.csv")
def queues_csv(db: SessionDep, _: WebStaff, project_id: int) -> Response:
    rows = dashboard.queue_rows(db, project_id)
    return csv_response(exports.queues_csv(rows), project_id, "queues")


@router.get("/{project_id}/dashboard/agreement-over-time.csv")
def agreement_csv(db: SessionDep, _: WebStaff, project_id: int) -> Response:
    get_project_checked(db, project_id)
    points = agreement_over_time(db, project_id)
    return csv_response(exports.agreement_over_time_csv(points), project_id, "agreement-over-time")


@router.get("/{project_id}/dashboard/labelers.csv")
def labelers_csv(db: SessionDep, _: WebAdmin, project_id: int) -> Response:
    rows = dashboard.labeler_rows(db, project_id)
    return csv_response(exports.labelers_csv(rows), project_id, "labelers")


@router.get("/{project_id}/dashboard/categories.csv")
def categories_csv(db: SessionDep, _: WebStaff, project_id: int) -> Response:
    rows = dashboard.category_counts(db, project_id)
    return csv_response(exports.categories_csv(rows), project_id, "categories")


@router.get("/{project_id}/dashboard/flags.csv")
def flags_csv(db: SessionDep, _: WebStaff, project_id: int) -> Response:
    rows = dashboard.flag_counts(db, project_id)
    return csv_response(exports.flags_csv(rows), project_id, "flags")


@router.get("/{project_id}/dashboard/cost.csv")
def cost_csv(db: SessionDep, _: WebStaff, project_id: int) -> Response:
    cost = dashboard.cost_summary(db, project_id)
    return csv_response(exports.cost_csv(cost), project_id, "cost")
