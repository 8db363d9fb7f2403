"""The per-labeler table: volume, median time per task, skip rate, agreement, gold accuracy."""

from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import case, func, select, union
from sqlalchemy.orm import Session

from app.models import Assignment, AssignmentStatus, Comparison, Demonstration, Queue, Task, User
from app.schemas.agreement import AgreementReport, LabelerAgreementOut
from app.schemas.dashboard import LabelerDashboardRow
from app.services.agreement.service import agreement_report
from app.services.dashboard.scope import comparisons_of, demonstrations_of
from app.services.prompts import get_project_checked

# A superseded assignment was submitted; only its task was reopened for a new guideline.
SUBMITTED = (AssignmentStatus.submitted, AssignmentStatus.superseded)


def _volumes(db: Session, project_id: int) -> tuple[dict[int, int], dict[int, int]]:
    demonstrations = db.execute(
        demonstrations_of(project_id, Demonstration.labeler_id, func.count()).group_by(
            Demonstration.labeler_id
        )
    ).all()
    comparisons = db.execute(
        comparisons_of(project_id, Comparison.labeler_id, func.count()).group_by(
            Comparison.labeler_id
        )
    ).all()
    return dict(demonstrations), dict(comparisons)  # type: ignore[arg-type]


def _median_seconds(db: Session, project_id: int) -> dict[int, float]:
    """Median time per label over both kinds; labels that recorded no time are left out."""
    times: dict[int, list[float]] = defaultdict(list)
    for model, query in (
        (Demonstration, demonstrations_of),
        (Comparison, comparisons_of),
    ):
        rows = db.execute(
            query(project_id, model.labeler_id, model.time_spent_seconds).where(
                model.time_spent_seconds.is_not(None)
            )
        )
        for labeler_id, seconds in rows:
            times[labeler_id].append(float(seconds))
    return {labeler: statistics.median(found) for labeler, found in times.items()}


def _assignments(db: Session, project_id: int) -> dict[int, tuple[int, int]]:
    """{labeler id: (submitted, skipped)} over the assignments of the project's queues."""
    rows = db.execute(
        select(
            Assignment.labeler_id,
            func.count(case((Assignment.status.in_(SUBMITTED), 1))),
            func.count(case((Assignment.status == AssignmentStatus.skipped, 1))),
        )
        .join(Task, Task.id == Assignment.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(Queue.project_id == project_id)
        .group_by(Assignment.labeler_id)
    )
    return {labeler: (submitted, skipped) for labeler, submitted, skipped in rows}


def labeler_rows(
    db: Session, project_id: int, report: AgreementReport | None = None
) -> list[LabelerDashboardRow]:
    """One row per labeler who made a label, submitted or skipped a task, or has an agreement
    figure in the project, by username. `report`: the project's agreement report when the
    caller has it already (unfiltered), so it is not computed twice."""
    get_project_checked(db, project_id)
    if report is None:
        report = agreement_report(db, project_id)
    demonstrations, comparisons = _volumes(db, project_id)
    medians = _median_seconds(db, project_id)
    assignments = {
        labeler: counts for labeler, counts in _assignments(db, project_id).items() if any(counts)
    }
    agreement: dict[int, LabelerAgreementOut] = {row.labeler_id: row for row in report.labelers}
    ids = sorted({*demonstrations, *comparisons, *assignments, *agreement})
    names = dict(db.execute(select(User.id, User.username).where(User.id.in_(ids))).all())

    rows = []
    for labeler in ids:
        submitted, skipped = assignments.get(labeler, (0, 0))
        figures = agreement.get(labeler)
        made = (demonstrations.get(labeler, 0), comparisons.get(labeler, 0))
        rows.append(
            LabelerDashboardRow(
                labeler_id=labeler,
                username=names.get(labeler, f"user {labeler}"),
                demonstrations=made[0],
                comparisons=made[1],
                labels=sum(made),
                median_seconds=medians.get(labeler),
                submitted=submitted,
                skipped=skipped,
                skip_rate=skipped / (submitted + skipped) if submitted + skipped else None,
                pairwise_agreement=figures.pairwise_agreement if figures else None,
                agreement_pairs=figures.labeler_pairs if figures else 0,
                gold_pairs=figures.gold_pairs if figures else 0,
                gold_accuracy=figures.gold_accuracy if figures else None,
            )
        )
    return sorted(rows, key=lambda row: (row.username, row.labeler_id))


def project_labelers(db: Session, project_id: int) -> list[User]:
    """Everyone who made a demonstration or comparison in the project, by username."""
    made = union(
        demonstrations_of(project_id, Demonstration.labeler_id),
        comparisons_of(project_id, Comparison.labeler_id),
    )
    ids = set(db.scalars(select(made.subquery().c[0])))
    return [user for user in db.scalars(select(User).order_by(User.username)) if user.id in ids]
