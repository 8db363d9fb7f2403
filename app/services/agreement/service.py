"""Agreement of a project's labelers, consensus of tasks, and agreement over time.

What counts and how figures are defined: loading.py, metrics.py and consensus.py; the report's
layout: report.py. Everything is computed on request from the raw comparisons, except that
consensus keeps each project's labeler reliability in memory until a counted comparison is
added (reliability.py); nothing here writes to the database.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import GuidelineVersion, Queue, Task
from app.schemas.agreement import (
    AgreementPoint,
    AgreementReport,
    ConsensusPair,
    TaskConsensus,
)
from app.services.agreement.consensus import consensus
from app.services.agreement.loading import load_ratings
from app.services.agreement.ratings import Ratings
from app.services.agreement.reliability import (
    Reliability,
    cached_reliability,
    project_reliability,
)
from app.services.agreement.report import build_report, over_time_points
from app.services.projects import get_project

BUCKETS = ("day", "week")
# Task ids per IN (...) list: under SQLite's and PostgreSQL's bound-parameter limits.
ID_CHUNK = 5000


def _check_filters(
    db: Session, project_id: int, queue_id: int | None, guideline_version_id: int | None
) -> None:
    get_project(db, project_id)
    if queue_id is not None:
        found = select(Queue.id).where(Queue.id == queue_id, Queue.project_id == project_id)
        if db.scalar(found) is None:
            raise NotFound(f"no queue with id {queue_id} in project {project_id}", field="queue_id")
    if guideline_version_id is not None:
        found = select(GuidelineVersion.id).where(
            GuidelineVersion.id == guideline_version_id,
            GuidelineVersion.project_id == project_id,
        )
        if db.scalar(found) is None:
            raise NotFound(
                f"no guideline version with id {guideline_version_id} in project {project_id}",
                field="guideline_version_id",
            )


def agreement_report(
    db: Session,
    project_id: int,
    *,
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> AgreementReport:
    """Overall, per queue, per guideline version and per labeler agreement of a project,
    optionally only of one queue and/or one guideline version."""
    _check_filters(db, project_id, queue_id, guideline_version_id)
    ratings = load_ratings(
        db,
        project_ids=[project_id],
        queue_id=queue_id,
        guideline_version_id=guideline_version_id,
    )
    return build_report(db, ratings, project_id, queue_id, guideline_version_id)


@dataclass(frozen=True)
class AgreementDashboard:
    report: AgreementReport
    over_time: list[AgreementPoint]


def agreement_dashboard(
    db: Session,
    project_id: int,
    *,
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> AgreementDashboard:
    """agreement_report and daily agreement_over_time from one read of the comparisons."""
    _check_filters(db, project_id, queue_id, guideline_version_id)
    ratings = load_ratings(
        db,
        project_ids=[project_id],
        queue_id=queue_id,
        guideline_version_id=guideline_version_id,
        bucket="day",
    )
    return AgreementDashboard(
        report=build_report(db, ratings, project_id, queue_id, guideline_version_id),
        over_time=over_time_points(ratings),
    )


def _chunks(ids: Sequence[int], size: int = ID_CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def task_consensus(
    db: Session, task_ids: Iterable[int], *, without_rejected: bool = False
) -> list[TaskConsensus]:
    """Consensus ranking of each task (ascending id), from all its counting comparisons
    (`without_rejected`: but those an admin rejected, as snapshots make it).

    Labeler reliability comes from every counting comparison of the task's project, so a
    task gets the same consensus whether asked for alone or with the whole project; it is
    cached per project until a counted comparison is added (reliability.py), and then only
    the asked tasks' comparisons are read."""
    ids = sorted(set(task_ids))
    project_of: dict[int, int] = {}
    for chunk in _chunks(ids):
        rows = db.execute(
            select(Task.id, Queue.project_id)
            .join(Queue, Queue.id == Task.queue_id)
            .where(Task.id.in_(chunk))
        )
        project_of.update(rows.all())
    missing = [task_id for task_id in ids if task_id not in project_of]
    if missing:
        raise NotFound(f"no task with id {missing[0]}")

    found: dict[int, TaskConsensus] = {}
    for project_id in sorted(set(project_of.values())):
        wanted = [task_id for task_id in ids if project_of[task_id] == project_id]
        found.update(
            _consensus_in_project(db, project_id, wanted, without_rejected=without_rejected)
        )
    return [found[task_id] for task_id in ids]


def _consensus_in_project(
    db: Session, project_id: int, wanted: list[int], *, without_rejected: bool = False
) -> dict[int, TaskConsensus]:
    loaded: list[Ratings] = []

    def whole_project() -> Reliability:
        loaded.append(load_ratings(db, project_ids=[project_id]))
        return project_reliability(loaded[0])

    # Reliability is each labeler's, measured on every counting comparison (a rejected label
    # is still what they did); only the judgements that make the consensus leave them out.
    reliability = cached_reliability(db, project_id, whole_project)
    if loaded and not without_rejected:
        ratings = loaded[0].select(np.isin(loaded[0].task, wanted))
    elif len(wanted) <= ID_CHUNK:
        ratings = load_ratings(
            db, project_ids=[project_id], task_ids=wanted, without_rejected=without_rejected
        )
    else:
        whole = load_ratings(db, project_ids=[project_id], without_rejected=without_rejected)
        ratings = whole.select(np.isin(whole.task, wanted))
    return _task_consensus(ratings, reliability, wanted)


def _task_consensus(
    ratings: Ratings, reliability: Reliability, task_ids: list[int]
) -> dict[int, TaskConsensus]:
    result = consensus(ratings, reliability)
    rankings = result.rankings()
    support = result.task_support()
    tasks, counts = np.unique(ratings.judgement_task, return_counts=True)
    comparisons = dict(zip(tasks.tolist(), counts.tolist(), strict=True))
    level = {
        (task, response): lvl
        for task, response, lvl in zip(
            result.node_task.tolist(),
            result.node_response.tolist(),
            result.node_level.tolist(),
            strict=True,
        )
    }
    pairs: dict[int, list[tuple[Any, ...]]] = {}
    for task, winner, loser, labelers, share, weight in zip(
        result.pair_task.tolist(),
        result.winner.tolist(),
        result.loser.tolist(),
        result.labelers.tolist(),
        result.support.tolist(),
        result.weight.tolist(),
        strict=True,
    ):
        sort_key = (level[task, winner], level[task, loser], winner, loser)
        pairs.setdefault(task, []).append((sort_key, winner, loser, labelers, share, weight))
    found = {}
    for task_id in task_ids:
        ordered = sorted(pairs.get(task_id, []))
        found[task_id] = TaskConsensus(
            task_id=task_id,
            comparisons=comparisons.get(task_id, 0),
            ranking=rankings.get(task_id, []),
            support=support.get(task_id),
            pairs=[
                ConsensusPair(
                    winner_response_id=winner,
                    loser_response_id=loser,
                    labelers=labelers,
                    support=None if math.isnan(share) else share,  # nobody ordered it
                    weight=weight,
                )
                for _, winner, loser, labelers, share, weight in ordered
            ],
        )
    return found


def agreement_over_time(
    db: Session,
    project_id: int,
    bucket: str = "day",
    *,
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> list[AgreementPoint]:
    """Pairwise agreement per UTC day (or week, from Monday) of Comparison.created_at, for
    the buckets where two labelers' judgements met. Two judgements are compared in the bucket
    of the later one: that is when their agreement became known."""
    if bucket not in BUCKETS:
        raise InvalidInput(f"bucket must be one of {', '.join(BUCKETS)}", field="bucket")
    _check_filters(db, project_id, queue_id, guideline_version_id)
    ratings = load_ratings(
        db,
        project_ids=[project_id],
        queue_id=queue_id,
        guideline_version_id=guideline_version_id,
        bucket="week" if bucket == "week" else "day",
    )
    return over_time_points(ratings)


CSV_COLUMNS = (
    "labeler_id",
    "username",
    "comparisons",
    "response_pairs",
    "labeler_pairs",
    "agreeing_pairs",
    "pairwise_agreement",
    "reliability",
    "gold_pairs",
    "gold_correct",
    "gold_accuracy",
)


def csv_name(project_id: int) -> str:
    return f"project-{project_id}-labeler-agreement.csv"


def labelers_csv(report: AgreementReport) -> str:
    """The per-labeler table as CSV (empty cells where a figure is undefined)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.labelers:
        values = row.model_dump()
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: object) -> object:
    if value is None:
        return ""
    # A spreadsheet would run a cell starting like a formula (a username may start with "-").
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value
