"""Choosing prompts by labeler disagreement: label where people disagree most, not at random.

A prompt's agreement is pairwise agreement on its own comparisons: over every response pair two
labelers both ordered (no tie), the share of labeler pairs that ordered it the same way. Prompts
no two labelers judged have no figure and are never chosen this way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Comparison, ComparisonItem
from app.services.queues import chunks


def prompt_agreement(db: Session, prompt_ids: Sequence[int]) -> dict[int, float]:
    """Pairwise agreement of each prompt judged by two or more labelers."""
    ranks: dict[int, dict[int, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for chunk in chunks(list(prompt_ids)):
        rows = db.execute(
            select(
                Comparison.prompt_id,
                Comparison.labeler_id,
                ComparisonItem.response_id,
                ComparisonItem.rank,
            )
            .join(ComparisonItem, ComparisonItem.comparison_id == Comparison.id)
            .where(
                Comparison.prompt_id.in_(chunk),
                Comparison.labeler_id.is_not(None),
                ComparisonItem.rank.is_not(None),
            )
        )
        for prompt_id, labeler_id, response_id, rank in rows:
            # A labeler who judged the prompt twice (two tasks): the later judgement counts.
            ranks[prompt_id][labeler_id][response_id] = rank
    agreement: dict[int, float] = {}
    for prompt_id, by_labeler in ranks.items():
        same = total = 0
        for first, second in combinations(by_labeler.values(), 2):
            shared = sorted(set(first) & set(second))
            for a, b in combinations(shared, 2):
                order_1, order_2 = first[a] - first[b], second[a] - second[b]
                if order_1 and order_2:
                    total += 1
                    same += (order_1 > 0) == (order_2 > 0)
        if total:
            agreement[prompt_id] = same / total
    return agreement


def most_disputed(db: Session, prompt_ids: Sequence[int], limit: int) -> list[int]:
    """Up to `limit` prompts, lowest agreement first (prompt id breaks ties)."""
    agreement = prompt_agreement(db, prompt_ids)
    return sorted(agreement, key=lambda prompt_id: (agreement[prompt_id], prompt_id))[:limit]
