"""An evaluation's result: A's wins, ties and losses against B, its win rate, and a confidence
interval for it.

What counts as a judgement: a labeler's comparison of one of the evaluation queue's tasks that
ranks both answers (imports, and "all unacceptable" marks, say nothing about which is better);
a labeler who judged a task twice counts once, by the later comparison. Each one is a win for A
(A ranked above B), a tie (same rank) or a loss. The win rate counts a tie as half a win.

The confidence interval. With overlap, several labelers judge the same task, and their
judgements are not independent (some prompts favour A for everyone), so treating them as
independent would make the interval too narrow. We keep the plain win rate and shrink the
sample to its effective size n / deff, where deff (Kish's design effect) is the task-clustered
(sandwich) variance of the win rate over its variance as if every judgement were independent;
then we take the Wilson score interval of the win rate on that effective size. Wilson rather
than the normal interval because evaluations are small and win rates near 0 or 1 are common
(the normal one would leave [0, 1] or shrink to a point). Treating a tie as half a win inside
Wilson is conservative: any outcome in [0, 1] with mean p has variance at most p(1 - p). With
one labeler per task the design effect is exactly 1 and this is the textbook Wilson interval.
deff is held at 1 or above (we never claim more than independent judgements); when it cannot
be estimated (one task, or every judgement the same) each task counts once.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    Evaluation,
    LabelSource,
    Model,
    Queue,
    Response,
    Run,
    Task,
)
from app.schemas.evaluations import EvaluationOut, EvaluationResult
from app.services.prompts import get_project_checked, storable_id

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    win_rate: float
    low: float
    high: float
    effective_judgements: float


def win_rate_interval(tasks: list[list[float]], confidence: float = CONFIDENCE) -> Interval | None:
    """The win rate of judgements (1 win, 0.5 tie, 0 loss) grouped by task, and its Wilson
    interval on the effective number of judgements (module docstring); None without any."""
    outcomes = [outcome for task in tasks for outcome in task]
    n = len(outcomes)
    if n == 0:
        return None
    clusters = [task for task in tasks if task]
    rate = sum(outcomes) / n
    independent = sum((y - rate) ** 2 for y in outcomes) / (n - 1) / n if n > 1 else 0.0
    if len(clusters) < 2 or independent == 0.0:
        effective = float(len(clusters))
    else:
        spread = sum((sum(task) - rate * len(task)) ** 2 for task in clusters)
        clustered = len(clusters) / (len(clusters) - 1) * spread / n**2
        effective = n / max(1.0, clustered / independent)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    shrink = 1 + z**2 / effective
    centre = (rate + z**2 / (2 * effective)) / shrink
    half = z / shrink * math.sqrt(rate * (1 - rate) / effective + z**2 / (4 * effective**2))
    return Interval(rate, max(0.0, centre - half), min(1.0, centre + half), effective)


def evaluation_result(db: Session, evaluation_id: int) -> EvaluationResult:
    evaluation = get_evaluation(db, evaluation_id)
    task_ids = list(db.scalars(select(Task.id).where(Task.queue_id == evaluation.queue_id)))
    rows = db.execute(
        select(
            Comparison.id,
            Comparison.task_id,
            Comparison.labeler_id,
            Comparison.created_at,
            Response.model_id,
            ComparisonItem.rank,
        )
        .join(Task, Task.id == Comparison.task_id)
        .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
        .join(Response, Response.id == ComparisonItem.response_id)
        .where(
            Task.queue_id == evaluation.queue_id,
            Comparison.source == LabelSource.labeler,
            Comparison.labeler_id.is_not(None),
            Comparison.all_unacceptable.is_(False),
            Response.model_id.in_([evaluation.model_a_id, evaluation.model_b_id]),
        )
    )
    ranks: dict[int, dict[int, int | None]] = defaultdict(dict)
    latest: dict[tuple[int, int], tuple[datetime, int]] = {}
    for comparison_id, task_id, labeler_id, created_at, model_id, rank in rows:
        ranks[comparison_id][model_id] = rank
        key = (task_id, labeler_id)
        if key not in latest or (created_at, comparison_id) > latest[key]:
            latest[key] = (created_at, comparison_id)
    by_task: dict[int, list[float]] = defaultdict(list)
    for (task_id, _), (_, comparison_id) in sorted(latest.items()):
        rank_a = ranks[comparison_id].get(evaluation.model_a_id)
        rank_b = ranks[comparison_id].get(evaluation.model_b_id)
        if rank_a is None or rank_b is None:
            continue
        by_task[task_id].append(1.0 if rank_a < rank_b else 0.5 if rank_a == rank_b else 0.0)
    outcomes = [outcome for task in by_task.values() for outcome in task]
    interval = win_rate_interval(list(by_task.values()))
    return EvaluationResult(
        wins=outcomes.count(1.0),
        ties=outcomes.count(0.5),
        losses=outcomes.count(0.0),
        judgements=len(outcomes),
        tasks_judged=len(by_task),
        tasks_total=len(task_ids),
        win_rate=interval.win_rate if interval else None,
        ci_low=interval.low if interval else None,
        ci_high=interval.high if interval else None,
        effective_judgements=interval.effective_judgements if interval else None,
        confidence=CONFIDENCE,
    )


def get_evaluation(db: Session, evaluation_id: int) -> Evaluation:
    evaluation = db.get(Evaluation, evaluation_id) if storable_id(evaluation_id) else None
    if evaluation is None:
        raise NotFound(f"no evaluation with id {evaluation_id}")
    return evaluation


def list_evaluations(db: Session, project_id: int) -> list[Evaluation]:
    get_project_checked(db, project_id)
    query = select(Evaluation).where(Evaluation.project_id == project_id)
    return list(db.scalars(query.order_by(Evaluation.id.desc())))


def evaluation_out(db: Session, evaluation: Evaluation) -> EvaluationOut:
    model_a = db.get(Model, evaluation.model_a_id)
    model_b = db.get(Model, evaluation.model_b_id)
    queue = db.get(Queue, evaluation.queue_id)
    run = db.get(Run, evaluation.run_id) if evaluation.run_id is not None else None
    assert model_a is not None and model_b is not None and queue is not None
    return EvaluationOut(
        id=evaluation.id,
        project_id=evaluation.project_id,
        name=evaluation.name,
        model_a_id=model_a.id,
        model_a_name=model_a.name,
        model_b_id=model_b.id,
        model_b_name=model_b.name,
        queue_id=queue.id,
        queue_name=queue.name,
        run_id=evaluation.run_id,
        run_status=run.status if run else None,
        created_by_id=evaluation.created_by_id,
        created_at=evaluation.created_at,
        result=evaluation_result(db, evaluation.id),
    )
