"""A project's hub: where its labeling, agreement, spend, data and runs stand, at a glance.

Each figure comes from the service that owns it (queue progress, agreement, cost); this
module only gathers them and picks the latest few snapshots and runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.models import Run, Snapshot
from app.schemas.agreement import AgreementFigures
from app.schemas.dashboard import CostSummary, QueueDashboardRow
from app.services.agreement.service import agreement_report
from app.services.dashboard import cost_summary, queue_rows
from app.services.projects import get_project

# Enough to see what was made last and follow it; the tabs list them all.
LATEST = 5


@dataclass(frozen=True)
class ProjectHub:
    queues: list[QueueDashboardRow]
    agreement: AgreementFigures
    cost: CostSummary
    snapshots: list[Snapshot]  # newest first, at most LATEST
    snapshot_count: int
    runs: list[Run]  # newest first, at most LATEST
    run_count: int


def project_hub(db: Session, project_id: int) -> ProjectHub:
    get_project(db, project_id)
    snapshots = select(Snapshot).where(Snapshot.project_id == project_id)
    runs = select(Run).where(Run.project_id == project_id)
    return ProjectHub(
        queues=queue_rows(db, project_id),
        agreement=agreement_report(db, project_id).overall,
        cost=cost_summary(db, project_id),
        snapshots=list(db.scalars(snapshots.order_by(Snapshot.id.desc()).limit(LATEST))),
        snapshot_count=_count(db, snapshots),
        runs=list(db.scalars(runs.order_by(Run.id.desc()).limit(LATEST))),
        run_count=_count(db, runs),
    )


def _count(db: Session, query: Select[Any]) -> int:
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0
