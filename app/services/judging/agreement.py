"""Each judge against the people: how often a judge orders a response pair the way the
labelers' consensus does, overall, per prompt category and per queue, and where it disagrees
most confidently.

A judge is a model with, for a generative judge, one template version: the same model asked
with another template is another judge. Its label of a task is its latest AI comparison of
that task. The human consensus is the agreement page's (app/services/agreement/consensus.py:
weighted Borda over the labelers' counting comparisons only, the labelers' reliability from
the whole project); its pairs are those of two responses on different consensus levels that
at least one labeler ordered.

Agreement: over the consensus pairs of the tasks a judge labelled, the share the judge orders
the same way. A pair the judge ties is left out (it expresses no preference), as a tied pair is
left out of the labelers' pairwise agreement; a pair the consensus ties has no order and is not
a consensus pair. The 95% interval is the evaluations' (app/services/evaluations/results.py):
Wilson on the effective number of pairs, pairs clustered by task.

How sure the judge was of a reversed pair: a reward judge's reward difference (its stored
ResponseScores), a generative judge's 1-7 score difference, or its rank difference when it
gave no scores. The most confident disagreements are the ones worth a person's second look:
sending.send_back_tasks asks for one more human label on each (overlap + 1, as the review page's
"send back" does).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    Comparison,
    ComparisonItem,
    JudgeTemplate,
    LabelSource,
    Model,
    ModelRole,
    Prompt,
    PromptCategory,
    Queue,
    ResponseScore,
    Task,
)
from app.schemas.judging import (
    JudgeAgreementOut,
    JudgeAgreementReport,
    JudgeCategoryFigures,
    JudgeDisagreement,
    JudgeFigures,
    JudgeQueueFigures,
)
from app.services.agreement.consensus import consensus
from app.services.agreement.loading import load_ratings
from app.services.agreement.reliability import cached_reliability, project_reliability
from app.services.evaluations.results import CONFIDENCE, win_rate_interval
from app.services.prompts import get_project_checked
from app.services.queues import chunks

DEFAULT_LIMIT = 20

JudgeKey = tuple[int, int | None]  # (model id, template id)


@dataclass(frozen=True)
class HumanPair:
    winner: int
    loser: int
    labelers: int
    support: float | None


def human_consensus_pairs(
    db: Session, project_id: int, queue_id: int | None = None
) -> dict[int, list[HumanPair]]:
    """{task: its consensus pairs that a labeler ordered}, from labelers' comparisons only."""
    ratings = load_ratings(db, project_ids=[project_id], queue_id=queue_id)
    if len(ratings) == 0:
        return {}
    reliability = cached_reliability(
        db, project_id, lambda: project_reliability(load_ratings(db, project_ids=[project_id]))
    )
    result = consensus(ratings, reliability)
    found: dict[int, list[HumanPair]] = defaultdict(list)
    for task, winner, loser, labelers, share in zip(
        result.pair_task.tolist(),
        result.winner.tolist(),
        result.loser.tolist(),
        result.labelers.tolist(),
        result.support.tolist(),
        strict=True,
    ):
        if labelers > 0:
            found[task].append(HumanPair(winner, loser, labelers, share))
    return found


def _ai_labels(
    db: Session, project_id: int, queue_id: int | None
) -> dict[JudgeKey, dict[int, dict[int, tuple[int | None, int | None]]]]:
    """{judge: {task: {response: (rank, score)}}} of each judge's latest label of each task."""
    query = (
        select(
            Comparison.id,
            Comparison.task_id,
            Comparison.model_id,
            Comparison.judge_template_id,
            Comparison.created_at,
        )
        .join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(
            Queue.project_id == project_id,
            Comparison.source == LabelSource.ai,
            Comparison.all_unacceptable.is_(False),
        )
    )
    if queue_id is not None:
        query = query.where(Task.queue_id == queue_id)
    latest: dict[tuple[JudgeKey, int], tuple[datetime, int]] = {}
    for comparison_id, task_id, model_id, template_id, created_at in db.execute(query):
        key = ((model_id, template_id), task_id)
        if key not in latest or (created_at, comparison_id) > latest[key]:
            latest[key] = (created_at, comparison_id)
    owner = {comparison_id: key for key, (_, comparison_id) in latest.items()}
    found: dict[JudgeKey, dict[int, dict[int, tuple[int | None, int | None]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for chunk in chunks(sorted(owner)):
        rows = db.execute(
            select(
                ComparisonItem.comparison_id,
                ComparisonItem.response_id,
                ComparisonItem.rank,
                ComparisonItem.score,
            ).where(ComparisonItem.comparison_id.in_(chunk))
        )
        for comparison_id, response_id, rank, score in rows:
            judge, task = owner[comparison_id]
            found[judge][task][response_id] = (rank, score)
    return found


def _rewards(db: Session, model_id: int, response_ids: Sequence[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for chunk in chunks(sorted(set(response_ids))):
        found.update(
            db.execute(
                select(ResponseScore.response_id, ResponseScore.score).where(
                    ResponseScore.model_id == model_id, ResponseScore.response_id.in_(chunk)
                )
            ).all()
        )
    return found


def _figures(by_task: dict[int, list[float]]) -> JudgeFigures:
    outcomes = [outcome for task in by_task.values() for outcome in task]
    interval = win_rate_interval([task for task in by_task.values() if task])
    return JudgeFigures(
        tasks=sum(1 for task in by_task.values() if task),
        pairs=len(outcomes),
        agreeing=int(sum(outcomes)),
        agreement=interval.win_rate if interval else None,
        ci_low=interval.low if interval else None,
        ci_high=interval.high if interval else None,
    )


def _task_info(db: Session, tasks: list[int]) -> dict[int, tuple[int, int, PromptCategory]]:
    """{task: (queue, prompt, the prompt's category)}."""
    found: dict[int, tuple[int, int, PromptCategory]] = {}
    for chunk in chunks(tasks):
        rows = db.execute(
            select(Task.id, Task.queue_id, Task.prompt_id, Prompt.category)
            .join(Prompt, Prompt.id == Task.prompt_id)
            .where(Task.id.in_(chunk))
        )
        found.update({task: (queue, prompt, category) for task, queue, prompt, category in rows})
    return found


Ranked = dict[int, tuple[int | None, int | None]]  # response -> (rank, score)


class _Outcomes:
    """One judge's outcome per consensus pair (1 agrees, 0 reverses), grouped by task for the
    clustered interval, overall, per category and per queue; and the reversed pairs."""

    def __init__(self) -> None:
        self.overall: dict[int, list[float]] = defaultdict(list)
        self.by_category: dict[PromptCategory, dict[int, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.by_queue: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.disagreements: list[JudgeDisagreement] = []

    def add(
        self,
        task: int,
        info: tuple[int, int, PromptCategory],
        ranked: Ranked,
        pairs: list[HumanPair],
        rewards: dict[int, float],
    ) -> None:
        queue, prompt, category = info
        for pair in pairs:
            if pair.winner not in ranked or pair.loser not in ranked:
                continue
            winner, loser = ranked[pair.winner], ranked[pair.loser]
            if winner[0] is None or loser[0] is None or winner[0] == loser[0]:
                continue  # the judge ties the pair: no preference, left out
            agrees = winner[0] < loser[0]
            for found in (self.overall, self.by_category[category], self.by_queue[queue]):
                found[task].append(1.0 if agrees else 0.0)
            if not agrees:
                self.disagreements.append(_disagreement(task, prompt, pair, rewards, winner, loser))


def judge_report(
    db: Session, project_id: int, *, queue_id: int | None = None, limit: int = DEFAULT_LIMIT
) -> JudgeAgreementReport:
    """Every judge of the project's tasks (of one queue, given `queue_id`) against the human
    consensus, with its `limit` most confident disagreements."""
    get_project_checked(db, project_id)
    if queue_id is not None:
        queue = db.get(Queue, queue_id)
        if queue is None or queue.project_id != project_id:
            raise NotFound(f"no queue with id {queue_id} in project {project_id}", field="queue_id")
    human = human_consensus_pairs(db, project_id, queue_id)
    labels = _ai_labels(db, project_id, queue_id)
    tasks = sorted({task for judged in labels.values() for task in judged})
    task_info = _task_info(db, tasks)
    models = {
        model.id: model
        for model in db.scalars(select(Model).where(Model.id.in_({m for m, _ in labels})))
    }
    versions = dict(
        db.execute(
            select(JudgeTemplate.id, JudgeTemplate.version).where(
                JudgeTemplate.project_id == project_id
            )
        ).all()
    )
    queue_names = dict(
        db.execute(select(Queue.id, Queue.name).where(Queue.project_id == project_id)).all()
    )
    judges = []
    for key in sorted(labels, key=lambda k: (models[k[0]].name, versions.get(k[1]) or 0)):
        model_id, template_id = key
        model = models[model_id]
        reward = model.role == ModelRole.reward
        judged = labels[key]
        rewards = (
            _rewards(db, model_id, [r for ranked in judged.values() for r in ranked])
            if reward
            else {}
        )
        outcomes = _Outcomes()
        for task, ranked in judged.items():
            outcomes.add(task, task_info[task], ranked, human.get(task, []), rewards)
        overall, by_category, by_queue, disagreements = (
            outcomes.overall,
            outcomes.by_category,
            outcomes.by_queue,
            outcomes.disagreements,
        )
        disagreements.sort(key=lambda d: (-d.margin, d.task_id, d.human_winner_response_id))
        judges.append(
            JudgeAgreementOut(
                model_id=model_id,
                model_name=model.name,
                mode="reward" if reward else "generative",
                template_id=template_id,
                template_version=versions.get(template_id) if template_id else None,
                labels=len(judged),
                overall=_figures(overall),
                categories=[
                    JudgeCategoryFigures(category=category, **_figures(found).model_dump())
                    for category, found in sorted(by_category.items())
                ],
                queues=[
                    JudgeQueueFigures(
                        queue_id=queue,
                        queue_name=queue_names.get(queue, f"queue {queue}"),
                        **_figures(found).model_dump(),
                    )
                    for queue, found in sorted(by_queue.items())
                ],
                disagreements=disagreements[:limit],
                confidence=CONFIDENCE,
            )
        )
    return JudgeAgreementReport(
        project_id=project_id,
        queue_id=queue_id,
        human_pairs=sum(len(human.get(task, [])) for task in tasks),
        judges=judges,
    )


def _disagreement(
    task: int,
    prompt: int,
    pair: HumanPair,
    rewards: dict[int, float],
    winner: tuple[int | None, int | None],
    loser: tuple[int | None, int | None],
) -> JudgeDisagreement:
    if pair.winner in rewards and pair.loser in rewards:
        margin, kind = rewards[pair.loser] - rewards[pair.winner], "reward"
    elif winner[1] is not None and loser[1] is not None:
        margin, kind = float(loser[1] - winner[1]), "score"
    else:
        margin, kind = float(winner[0] - loser[0]), "rank"
    return JudgeDisagreement(
        task_id=task,
        prompt_id=prompt,
        human_winner_response_id=pair.winner,
        human_loser_response_id=pair.loser,
        labelers=pair.labelers,
        support=None if pair.support is None or math.isnan(pair.support) else pair.support,
        margin=margin,
        margin_kind=kind,
    )


def category_agreement(
    db: Session, project_id: int, model_id: int, template_id: int | None
) -> dict[PromptCategory, float | None]:
    """One judge's agreement with the human consensus per prompt category (snapshots' rule)."""
    report = judge_report(db, project_id, limit=0)
    for judge in report.judges:
        if (judge.model_id, judge.template_id) == (model_id, template_id):
            return {row.category: row.agreement for row in judge.categories}
    return {}
