"""Reading runs and their metric history."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Run, RunMetric
from app.services.prompts import get_project_checked, storable_id


def get_run(db: Session, run_id: int) -> Run:
    run = db.get(Run, run_id) if storable_id(run_id) else None
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    return run


def list_runs(db: Session, project_id: int) -> list[Run]:
    get_project_checked(db, project_id)
    return list(db.scalars(select(Run).where(Run.project_id == project_id).order_by(Run.id.desc())))


def run_metrics(db: Session, run_id: int, *, after_step: int = -1) -> list[RunMetric]:
    """The run's logged rows in step order; `after_step` lets a live page fetch only new ones."""
    get_run(db, run_id)
    return list(
        db.scalars(
            select(RunMetric)
            .where(RunMetric.run_id == run_id, RunMetric.step > after_step)
            .order_by(RunMetric.step, RunMetric.id)
        )
    )


def last_metric_step(db: Session, run_id: int) -> int | None:
    """The highest step the run's metrics hold (None when none): what every earlier attempt's
    runner had forwarded by the time it stopped."""
    return db.scalar(select(func.max(RunMetric.step)).where(RunMetric.run_id == run_id))
