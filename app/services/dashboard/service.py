"""The whole dashboard of a project in one call, each part from its own module."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.schemas.dashboard import ProjectDashboard, QueueDashboardRow
from app.services.agreement.service import agreement_dashboard
from app.services.dashboard.content import category_counts, flag_counts
from app.services.dashboard.cost import cost_summary
from app.services.dashboard.labelers import labeler_rows
from app.services.queues import list_queues, queue_progress


def queue_rows(
    db: Session, project_id: int, now: datetime | None = None
) -> list[QueueDashboardRow]:
    """Progress of every queue of the project, by name."""
    return [
        QueueDashboardRow(
            queue_id=queue.id,
            name=queue.name,
            kind=queue.kind,
            is_paused=queue.is_paused,
            progress=queue_progress(db, queue.id, now=now),
        )
        for queue in list_queues(db, project_id)
    ]


def project_dashboard(
    db: Session, project_id: int, now: datetime | None = None
) -> ProjectDashboard:
    """`now` fixes the moment queue progress is measured at (leases in progress, the last
    hour's pace); the present when not given."""
    queues = queue_rows(db, project_id, now)
    agreement = agreement_dashboard(db, project_id)
    return ProjectDashboard(
        project_id=project_id,
        queues=queues,
        pairwise_agreement=agreement.report.overall.pairwise_agreement,
        agreement_over_time=agreement.over_time,
        labelers=labeler_rows(db, project_id, agreement.report),
        categories=category_counts(db, project_id),
        flags=flag_counts(db, project_id),
        cost=cost_summary(db, project_id),
    )
