"""An AgreementReport from Ratings: the figures per slice, the labeler table, points in time.

The queries here are small (queues, versions, usernames, gold answers); the comparisons
themselves arrive as Ratings from loading.py.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import GuidelineVersion, Queue, QueueKind, Task, User
from app.schemas.agreement import (
    AgreementFigures,
    AgreementPoint,
    AgreementReport,
    GuidelineVersionAgreement,
    LabelerAgreementOut,
    QueueAgreement,
)
from app.services.agreement import metrics
from app.services.agreement.arrays import dense_codes, dense_index
from app.services.agreement.consensus import labeler_reliability
from app.services.agreement.loading import NO_VERSION
from app.services.agreement.ratings import Ratings


def figures_by(ratings: Ratings, label: str | None) -> dict[int, AgreementFigures]:
    """Every figure per value of a judgement label (one entry, 0, for label None)."""
    if label is None:
        values = np.zeros(1, dtype=np.int64)
        codes = np.zeros(ratings.judgement_count, dtype=np.int64)
    else:
        codes, values = dense_codes(ratings.judgement_label(label))
    labeler_code, _ = dense_codes(ratings.judgement_labeler)
    width = int(labeler_code.max()) + 1 if labeler_code.size else 1
    comparisons = np.bincount(codes, minlength=values.size)
    _, distinct = dense_index(codes * width + labeler_code)
    labelers = np.bincount(distinct // width, minlength=values.size)
    pairwise = metrics.pairwise_agreement_by(ratings, label)
    alphas = metrics.ordinal_alpha_by(ratings, label)
    taus = metrics.mean_kendall_tau_by(ratings, label)
    found = {}
    for code, value in enumerate(values.tolist()):
        pairs = pairwise[value]
        found[value] = AgreementFigures(
            comparisons=int(comparisons[code]),
            labelers=int(labelers[code]),
            pairwise_agreement=pairs.rate,
            agreeing_pairs=pairs.agreeing,
            labeler_pairs=pairs.labeler_pairs,
            response_pairs=pairs.response_pairs,
            krippendorff_alpha=alphas[value],
            mean_kendall_tau=taus[value].mean,
            tau_pairs=taus[value].labeler_pairs,
        )
    return found


EMPTY = AgreementFigures(
    comparisons=0,
    labelers=0,
    pairwise_agreement=None,
    agreeing_pairs=0,
    labeler_pairs=0,
    response_pairs=0,
    krippendorff_alpha=None,
    mean_kendall_tau=None,
    tau_pairs=0,
)


def gold_rankings(
    db: Session, project_id: int, queue_id: int | None = None
) -> dict[int, list[list[int]]]:
    """{task id: gold ranking} of the project's gold tasks with a well-formed answer."""
    query = (
        select(Task.id, Task.gold_answer)
        .join(Queue, Queue.id == Task.queue_id)
        .where(Queue.project_id == project_id, Task.is_gold.is_(True))
    )
    if queue_id is not None:
        query = query.where(Task.queue_id == queue_id)
    found = {}
    for task_id, answer in db.execute(query):
        ranking = answer.get("ranking") if isinstance(answer, dict) else None
        if isinstance(ranking, list) and all(
            isinstance(group, list) and all(type(i) is int for i in group) for group in ranking
        ):
            found[task_id] = ranking
    return found


def _labelers(
    db: Session, ratings: Ratings, overall: float | None, gold: dict[int, list[list[int]]]
) -> list[LabelerAgreementOut]:
    agreement = metrics.labeler_agreement(ratings)
    reliability = labeler_reliability(agreement, overall)
    accuracy = metrics.gold_accuracy(ratings, gold)
    names = dict(
        db.execute(select(User.id, User.username).where(User.id.in_(sorted(agreement)))).all()
    )
    rows = []
    for labeler, found in agreement.items():
        right = accuracy.get(labeler, metrics.GoldAccuracy())
        rows.append(
            LabelerAgreementOut(
                labeler_id=labeler,
                username=names.get(labeler, f"user {labeler}"),
                comparisons=found.judgements,
                response_pairs=found.response_pairs,
                labeler_pairs=found.comparisons,
                agreeing_pairs=found.agreeing,
                pairwise_agreement=found.rate,
                reliability=reliability[labeler],
                gold_pairs=right.pairs,
                gold_correct=right.correct,
                gold_accuracy=right.rate,
            )
        )
    return sorted(rows, key=lambda row: row.username)


def build_report(
    db: Session,
    ratings: Ratings,
    project_id: int,
    queue_id: int | None,
    guideline_version_id: int | None,
) -> AgreementReport:
    """The report of `ratings`, already filtered by the queue and guideline version given."""
    overall = figures_by(ratings, None)[0]

    by_queue = figures_by(ratings, "queue")
    queue_query = select(Queue.id, Queue.name, Queue.kind).where(Queue.project_id == project_id)
    if queue_id is not None:
        queue_query = queue_query.where(Queue.id == queue_id)
    queues = [
        QueueAgreement(queue_id=qid, queue_name=name, **by_queue.get(qid, EMPTY).model_dump())
        for qid, name, kind in db.execute(queue_query.order_by(Queue.name, Queue.id))
        if kind == QueueKind.comparison or qid in by_queue
    ]

    by_version = figures_by(ratings, "version")
    numbers = dict(
        db.execute(
            select(GuidelineVersion.id, GuidelineVersion.version).where(
                GuidelineVersion.project_id == project_id
            )
        ).all()
    )
    versions = [
        GuidelineVersionAgreement(
            guideline_version_id=None if vid == NO_VERSION else vid,
            version=numbers.get(vid),
            **figures.model_dump(),
        )
        for vid, figures in by_version.items()
    ]
    versions.sort(key=lambda row: (row.version is None, row.version or 0))

    gold = gold_rankings(db, project_id, queue_id)
    return AgreementReport(
        project_id=project_id,
        queue_id=queue_id,
        guideline_version_id=guideline_version_id,
        overall=overall,
        queues=queues,
        guideline_versions=versions,
        labelers=_labelers(db, ratings, overall.pairwise_agreement, gold),
    )


def over_time_points(ratings: Ratings) -> list[AgreementPoint]:
    return [
        AgreementPoint(
            start=date.fromordinal(number),
            pairwise_agreement=found.rate,
            agreeing_pairs=found.agreeing,
            labeler_pairs=found.labeler_pairs,
        )
        for number, found in sorted(metrics.pairwise_agreement_dated(ratings, "bucket").items())
    ]
