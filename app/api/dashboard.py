"""/api/v1 project dashboard: admins and researchers read it; its tables come as CSV too.

The per-labeler CSV names people, so only admins download it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiStaff, SessionDep
from app.schemas.dashboard import ProjectDashboard
from app.services import dashboard
from app.services.agreement.service import agreement_over_time
from app.services.dashboard import exports
from app.services.prompts import get_project_checked

router = APIRouter(responses=STANDARD_ERRORS, tags=["dashboard"])

CSV = {200: {"content": {"text/csv": {}}, "description": "The table as CSV."}}


def csv_response(body: str, project_id: int, table: str) -> Response:
    name = exports.csv_name(project_id, table)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/projects/{project_id}/dashboard", response_model=ProjectDashboard)
def get_dashboard(project_id: int, db: SessionDep, _: ApiStaff) -> ProjectDashboard:
    return dashboard.project_dashboard(db, project_id)


@router.get("/projects/{project_id}/dashboard/queues.csv", response_class=Response, responses=CSV)
def get_queues_csv(project_id: int, db: SessionDep, _: ApiStaff) -> Response:
    rows = dashboard.queue_rows(db, project_id)
    return csv_response(exports.queues_csv(rows), project_id, "queues")


@router.get(
    "/projects/{project_id}/dashboard/agreement-over-time.csv",
    response_class=Response,
    responses=CSV,
)
def get_agreement_csv(project_id: int, db: SessionDep, _: ApiStaff) -> Response:
    get_project_checked(db, project_id)
    points = agreement_over_time(db, project_id)
    return csv_response(exports.agreement_over_time_csv(points), project_id, "agreement-over-time")


@router.get("/projects/{project_id}/dashboard/labelers.csv", response_class=Response, responses=CSV)
def get_labelers_csv(project_id: int, db: SessionDep, _: ApiAdmin) -> Response:
    rows = dashboard.labeler_rows(db, project_id)
    return csv_response(exports.labelers_csv(rows), project_id, "labelers")


@router.get(
    "/projects/{project_id}/dashboard/categories.csv", response_class=Response, responses=CSV
)
def get_categories_csv(project_id: int, db: SessionDep, _: ApiStaff) -> Response:
    rows = dashboard.category_counts(db, project_id)
    return csv_response(exports.categories_csv(rows), project_id, "categories")


@router.get("/projects/{project_id}/dashboard/flags.csv", response_class=Response, responses=CSV)
def get_flags_csv(project_id: int, db: SessionDep, _: ApiStaff) -> Response:
    rows = dashboard.flag_counts(db, project_id)
    return csv_response(exports.flags_csv(rows), project_id, "flags")


@router.get("/projects/{project_id}/dashboard/cost.csv", response_class=Response, responses=CSV)
def get_cost_csv(project_id: int, db: SessionDep, _: ApiStaff) -> Response:
    cost = dashboard.cost_summary(db, project_id)
    return csv_response(exports.cost_csv(cost), project_id, "cost")
