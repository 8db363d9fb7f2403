"""Labelers' accuracy on gold tasks: tasks whose ranking is known beforehand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.services.agreement.arrays import dense_codes
from app.services.agreement.ratings import Ratings


@dataclass(frozen=True)
class GoldAccuracy:
    correct: int = 0
    pairs: int = 0

    @property
    def rate(self) -> float | None:
        return None if self.pairs == 0 else self.correct / self.pairs


def gold_accuracy(
    ratings: Ratings, gold: Mapping[int, Sequence[Sequence[int]]]
) -> dict[int, GoldAccuracy]:
    """Per labeler, over gold tasks: of the gold ranking's ordered pairs (a in an earlier group
    than b) that the labeler ranked both of, the share it ordered the same way. A labeler tie
    on a pair the gold answer orders counts as wrong; pairs the gold answer ties are skipped.

    `gold`: {task id: [[ids tied best], [next ids], ...]}."""
    expected = _expected_preference(ratings, gold)
    votes = ratings.votes
    wanted = expected[votes.item]  # 0 where the gold answer does not order the pair
    judged = wanted != 0
    correct = votes.preference[judged] == wanted[judged]
    code, labelers = dense_codes(ratings.judgement_labeler[votes.judgement[judged]])
    totals = np.bincount(code, minlength=labelers.size)
    rights = np.bincount(code, weights=correct, minlength=labelers.size)
    return {
        int(who): GoldAccuracy(int(rights[i]), int(totals[i])) for i, who in enumerate(labelers)
    }


def _expected_preference(
    ratings: Ratings, gold: Mapping[int, Sequence[Sequence[int]]]
) -> np.ndarray:
    """Per vote item (response pair), the vote the gold answer casts: +1, -1, or 0 for none."""
    expected = np.zeros(ratings.votes.item_count, dtype=np.int8)
    asked = np.array(sorted(gold), dtype=np.int64)
    position = np.minimum(np.searchsorted(ratings.tasks, asked), max(ratings.tasks.size - 1, 0))
    judged_tasks = {
        int(task): int(index)
        for task, index in zip(asked, position, strict=True)
        if ratings.tasks.size and ratings.tasks[index] == task
    }
    if not judged_tasks:
        return expected
    in_gold = np.isin(ratings.node_task, list(judged_tasks.values()))
    local = {
        (int(t), int(r)): int(place)
        for t, r, place in zip(
            ratings.node_task[in_gold],
            ratings.node_response[in_gold],
            ratings.node_local[in_gold],
            strict=True,
        )
    }
    keys: list[int] = []
    preferences: list[int] = []
    for task_id, t in judged_tasks.items():
        groups = gold[task_id]
        for i, better_group in enumerate(groups):
            for worse_group in groups[i + 1 :]:
                for better in better_group:
                    for worse in worse_group:
                        a, b = local.get((t, better)), local.get((t, worse))
                        if a is None or b is None or a == b:
                            continue
                        keys.append(int(ratings.item_key(t, min(a, b), max(a, b))))
                        preferences.append(1 if a < b else -1)
    item_keys = ratings.votes.item_keys
    found = np.searchsorted(item_keys, np.array(keys, dtype=np.int64))
    voted = found < item_keys.size
    voted[voted] = item_keys[found[voted]] == np.array(keys, dtype=np.int64)[voted]
    expected[found[voted]] = np.array(preferences, dtype=np.int8)[voted]
    return expected
