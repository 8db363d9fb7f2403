"""The judge's suggestion in the workbench, and how often labelers agreed with it.

A queue's suggestion mode (off by default) says whether the workbench shows the ranking of a
task's AI comparison (source "ai" on the same task: a judge run's label): only once the labeler
has submitted ("after": the label is not anchored by it, so agreement measures the judge), or
while they rank ("before"). Every labeler comparison made on a task with such a ranking, on a
queue whose mode was not off, records at submit the mode and the AI comparison it was measured
against (app/services/comparing.py), so a mode changed later never mixes one mode's labels into
the other's figure.

Agreement with the suggestion is pairwise: over the response pairs both the labeler and the
judge ordered (a tie in either gives no pair), the share ordered the same way."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import ScalarSelect, select
from sqlalchemy.orm import Session, aliased

from app.errors import InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Queue,
    QueueKind,
    SuggestionMode,
    Task,
)
from app.schemas.critique import QueueSuggestions, SuggestionAgreement
from app.services.queues import chunks, get_queue

SHOWN_MODES = (SuggestionMode.after, SuggestionMode.before)


def set_suggestion_mode(db: Session, queue_id: int, mode: SuggestionMode) -> Queue:
    queue = get_queue(db, queue_id)
    if queue.kind != QueueKind.comparison and mode != SuggestionMode.off:
        raise InvalidInput(
            f"queue {queue.id} is a demonstration queue: there is no ranking to suggest",
            field="mode",
        )
    queue.suggestion_mode = mode
    db.commit()
    return queue


def latest_ai_comparison() -> ScalarSelect[int]:
    """A scalar subquery: the newest ranked AI comparison of the task in the outer query."""
    judged = aliased(Comparison)
    return (
        select(judged.id)
        .where(
            judged.task_id == Task.id,
            judged.source == LabelSource.ai,
            judged.all_unacceptable.is_(False),
        )
        .order_by(judged.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def task_suggestion(db: Session, task_id: int) -> dict[int, int] | None:
    """The ranking (response id to rank, 1 best) of the task's newest AI comparison, if any."""
    comparison_id = db.scalar(
        select(latest_ai_comparison()).select_from(Task).where(Task.id == task_id)
    )
    return ranks_of(db, comparison_id) if comparison_id is not None else None


def ranks_of(db: Session, comparison_id: int) -> dict[int, int]:
    rows = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.rank).where(
            ComparisonItem.comparison_id == comparison_id, ComparisonItem.rank.is_not(None)
        )
    )
    return {response_id: rank for response_id, rank in rows}


def pair_agreement(
    labeler: Mapping[int, int | None], judge: Mapping[int, int | None]
) -> tuple[int, int]:
    """(agreed, pairs) over the response pairs both ordered without a tie."""
    agreed = pairs = 0
    shared = sorted(
        rid for rid in labeler if labeler[rid] is not None and judge.get(rid) is not None
    )
    for first, second in combinations(shared, 2):
        mine = labeler[first] - labeler[second]  # type: ignore[operator]
        theirs = judge[first] - judge[second]  # type: ignore[operator]
        if mine and theirs:
            pairs += 1
            agreed += (mine > 0) == (theirs > 0)
    return agreed, pairs


def ranking_words(ranks: Mapping[int, int], letters: Mapping[int, str]) -> str:
    """A ranking in the labeler's letters, best first: "B > A = C"."""
    order = sorted((rank, letters[rid]) for rid, rank in ranks.items() if rid in letters)
    words = ""
    for index, (rank, letter) in enumerate(order):
        if index:
            words += " = " if rank == order[index - 1][0] else " > "
        words += letter
    return words


@dataclass(frozen=True)
class Measured:
    mode: SuggestionMode
    judge: dict[int, int]
    agreed: int
    pairs: int


def measured(db: Session, comparison_id: int) -> Measured | None:
    """A labeler comparison's recorded suggestion and its agreement with it, if it had one."""
    label = db.get(Comparison, comparison_id)
    if label is None or label.suggestion_comparison_id is None or label.suggestion_mode is None:
        return None
    judge = ranks_of(db, label.suggestion_comparison_id)
    agreed, pairs = pair_agreement(ranks_of(db, comparison_id), judge)
    return Measured(label.suggestion_mode, judge, agreed, pairs)


def queue_agreement(db: Session, queue_id: int) -> QueueSuggestions:
    """Per mode, the labelers' agreement with the suggestions recorded on this queue's tasks."""
    queue = get_queue(db, queue_id)
    labels = db.execute(
        select(Comparison.id, Comparison.suggestion_mode, Comparison.suggestion_comparison_id)
        .join(Task, Task.id == Comparison.task_id)
        .where(
            Task.queue_id == queue.id,
            Comparison.source == LabelSource.labeler,
            Comparison.suggestion_mode.is_not(None),
        )
        .order_by(Comparison.id)
    ).all()
    wanted = sorted({row[0] for row in labels} | {row[2] for row in labels})
    ranks: dict[int, dict[int, int | None]] = defaultdict(dict)
    for chunk in chunks(wanted):
        rows = db.execute(
            select(
                ComparisonItem.comparison_id, ComparisonItem.response_id, ComparisonItem.rank
            ).where(ComparisonItem.comparison_id.in_(chunk))
        )
        for comparison_id, response_id, rank in rows:
            ranks[comparison_id][response_id] = rank
    totals = {mode: [0, 0, 0] for mode in SHOWN_MODES}
    for label_id, mode, judge_id in labels:
        agreed, pairs = pair_agreement(ranks[label_id], ranks[judge_id])
        found = totals[SuggestionMode(mode)]
        found[0] += 1
        found[1] += pairs
        found[2] += agreed
    return QueueSuggestions(
        queue_id=queue.id,
        mode=queue.suggestion_mode,
        by_mode=[
            SuggestionAgreement(
                mode=mode.value,
                comparisons=count,
                pairs=pairs,
                agreed=agreed,
                rate=agreed / pairs if pairs else None,
            )
            for mode, (count, pairs, agreed) in totals.items()
        ],
    )


def ranking_groups(ranks: Mapping[int, int]) -> list[list[int]]:
    """A ranking as groups of tied response ids, best first (as gold answers are written)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for response_id, rank in ranks.items():
        groups[rank].append(response_id)
    return [sorted(groups[rank]) for rank in sorted(groups)]
