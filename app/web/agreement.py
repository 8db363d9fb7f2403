"""The agreement page of a project (admins and researchers) and its CSV export (admins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.deps import SessionDep, WebAdmin, WebStaff
from app.errors import InvalidInput
from app.models import GuidelineVersion, Queue, QueueKind
from app.schemas.agreement import AgreementPoint
from app.services.agreement import service
from app.services.projects import get_project
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


@dataclass(frozen=True)
class Chart:
    """A polyline chart of agreement over time, laid out here and drawn as inline SVG."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: list[tuple[float, float, str]]  # x, y, tooltip
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


def over_time_chart(points: list[AgreementPoint], width: int = 720, height: int = 240) -> Chart:
    left, right, top, bottom = 48, width - 16, 12, height - 32
    days = [point.start.toordinal() for point in points]
    first, last = (min(days), max(days)) if days else (0, 0)
    span = max(last - first, 1)

    def x_of(day: int) -> float:
        if first == last:
            return (left + right) / 2
        return left + (day - first) / span * (right - left)

    def y_of(rate: float) -> float:
        return bottom - rate * (bottom - top)

    plotted = [
        (
            x_of(day),
            y_of(point.pairwise_agreement or 0.0),
            f"{point.start.isoformat()}: {(point.pairwise_agreement or 0.0):.0%} of "
            f"{point.labeler_pairs} labeler pairs",
        )
        for day, point in zip(days, points, strict=True)
    ]
    x_days = sorted({first, last, (first + last) // 2}) if days else []
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        points=plotted,
        y_ticks=[(y_of(rate), f"{rate:.0%}") for rate in (0.0, 0.25, 0.5, 0.75, 1.0)],
        x_ticks=[(x_of(day), date.fromordinal(day).isoformat()) for day in x_days],
    )


@router.get("/{project_id}/agreement")
def agreement_page(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    queue_id: str = "",
    guideline_version_id: str = "",
) -> Response:
    project = get_project(db, project_id)
    queue = optional_id(queue_id, "queue_id")
    version = optional_id(guideline_version_id, "guideline_version_id")
    found = service.agreement_dashboard(
        db, project_id, queue_id=queue, guideline_version_id=version
    )
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
            "points": found.over_time,
            "chart": over_time_chart(found.over_time),
            "queues": db.execute(
                select(Queue.id, Queue.name)
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
    queue_id: str = "",
    guideline_version_id: str = "",
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
