"""The agreement page of a project (admins and researchers) and its CSV export (admins)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import InvalidInput
from app.models import GuidelineVersion, Queue, QueueKind
from app.schemas import common
from app.services.agreement import service
from app.services.judging.agreement import judge_report
from app.services.projects import get_project
from app.services.reviews import rejected_counts
from app.web.charts import over_time_chart
from app.web.rendering import render

router = APIRouter(prefix="/projects")


def optional_id(value: str, field: str) -> int | None:
    """A filter from a GET form: empty means all."""
    value = value.strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInput(f"{field} must be a number", field=field)
    return int(value)


@router.get("/{project_id}/agreement")
def agreement_page(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    queue_id: common.Text = "",
    guideline_version_id: common.Text = "",
) -> Response:
    project = get_project(db, project_id)
    queue = optional_id(queue_id, "queue_id")
    version = optional_id(guideline_version_id, "guideline_version_id")
    found = service.agreement_dashboard(
        db, project_id, queue_id=queue, guideline_version_id=version
    )
    judges = judge_report(db, project_id, queue_id=queue)
    query = "&".join(
        f"{name}={value}"
        for name, value in (("queue_id", queue), ("guideline_version_id", version))
        if value is not None
    )
    return render(
        request,
        "agreement/report.html",
        {
            "project": project,
            "report": found.report,
            "judges": judges,
            # Quality beside agreement: how many of each labeler's labels an admin rejected.
            "rejected": rejected_counts(db, [row.labeler_id for row in found.report.labelers]),
            "points": found.over_time,
            "chart": over_time_chart(found.over_time),
            "queues": db.execute(
                select(Queue.id, Queue.name, Queue.overlap)
                .where(Queue.project_id == project_id, Queue.kind == QueueKind.comparison)
                .order_by(Queue.name, Queue.id)
            ).all(),
            "versions": db.execute(
                select(GuidelineVersion.id, GuidelineVersion.version)
                .where(GuidelineVersion.project_id == project_id)
                .order_by(GuidelineVersion.version)
            ).all(),
            "csv_url": f"/projects/{project_id}/agreement/labelers.csv"
            + (f"?{query}" if query else ""),
        },
        user=user,
    )


@router.get("/{project_id}/agreement/labelers.csv")
def labelers_csv(
    db: SessionDep,
    _: WebAdmin,
    project_id: int,
    queue_id: common.Text = "",
    guideline_version_id: common.Text = "",
) -> Response:
    report = service.agreement_report(
        db,
        project_id,
        queue_id=optional_id(queue_id, "queue_id"),
        guideline_version_id=optional_id(guideline_version_id, "guideline_version_id"),
    )
    return Response(
        service.labelers_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{service.csv_name(project_id)}"'},
    )
