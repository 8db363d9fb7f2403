"""One ranking per task from all its judgements, weighted by how reliable each labeler is.

Computed, never stored over the raw judgements: exports that want one label per task ask for
it, and every comparison stays as the labeler made it.

Reliability: a labeler's pairwise agreement with the others (metrics.labeler_agreement),
smoothed toward the overall rate as if it had RELIABILITY_PRIOR more comparisons at that rate:

    reliability = (agreeing + PRIOR * overall) / (comparisons + PRIOR)

so a newcomer with two shared pairs is not judged on them alone, and one who always reverses
the others sinks toward 0 as evidence grows. With no overlap anywhere every labeler gets 1.

Consensus: weighted Borda (net wins). Each labeler who orders a over b adds its reliability
to a's score and takes it from b's; responses are ranked by score, equal scores tie. For
complete rankings this is the Borda count, it needs no iterations, cannot fail to converge on
a response that always wins (where Bradley-Terry has no finite fit), and ties nothing that a
majority ordered unless the weights balance exactly.

Support of a consensus pair (winner over loser): the reliability-weighted share of the
labelers who ordered that pair that put the winner first (ties left out, as in pairwise
agreement); undefined when nobody ordered it. Weight for exports: 2 * support - 1, clipped at
0: 1 when every weighted vote agrees, 0 when they split evenly or lean against the consensus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from app.services.agreement.arrays import dense_codes, pairs_within_groups
from app.services.agreement.metrics import LabelerAgreement
from app.services.agreement.ratings import Ratings

RELIABILITY_PRIOR = 10.0
# Scores are sums of float weights: round before comparing so equal sums tie.
SCORE_DECIMALS = 9


def labeler_reliability(
    agreement: Mapping[int, LabelerAgreement],
    overall: float | None,
    prior: float = RELIABILITY_PRIOR,
) -> dict[int, float]:
    base = 1.0 if overall is None else overall
    return {
        labeler: (found.agreeing + prior * base) / (found.comparisons + prior)
        for labeler, found in agreement.items()
    }


@dataclass(frozen=True, eq=False)
class Consensus:
    """Arrays over the consensus of every task in a Ratings.

    Nodes (task, response): `level` 0 is the best group of the task. Pairs: every two
    responses of a task on different levels, winner first."""

    node_task: np.ndarray  # task ids
    node_response: np.ndarray
    node_level: np.ndarray
    node_score: np.ndarray
    pair_task: np.ndarray  # task ids
    winner: np.ndarray
    loser: np.ndarray
    labelers: np.ndarray  # how many judgements ordered the pair
    weight_for: np.ndarray  # reliability-weighted votes for the winner
    weight_against: np.ndarray

    @property
    def support(self) -> np.ndarray:
        total = self.weight_for + self.weight_against
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.weight_for / total, np.nan)

    @property
    def weight(self) -> np.ndarray:
        return np.nan_to_num(np.clip(2 * self.support - 1, 0.0, None), nan=0.0)

    def rankings(self) -> dict[int, list[list[int]]]:
        """{task id: [[response ids tied best], [next], ...]} (ids ascending in a group)."""
        order = np.lexsort((self.node_response, self.node_level, self.node_task))
        found: dict[int, list[list[int]]] = {}
        previous: tuple[int, int] | None = None
        for task, level, response in zip(
            self.node_task[order].tolist(),
            self.node_level[order].tolist(),
            self.node_response[order].tolist(),
            strict=True,
        ):
            groups = found.setdefault(task, [])
            if previous != (task, level):
                groups.append([])
                previous = (task, level)
            groups[-1].append(response)
        return found

    def task_support(self) -> dict[int, float | None]:
        """{task id: weighted votes agreeing with its consensus / all weighted votes on its
        consensus pairs} (None where no labeler ordered any of them)."""
        code, tasks = dense_codes(self.pair_task)
        agree = np.bincount(code, weights=self.weight_for, minlength=tasks.size)
        total = agree + np.bincount(code, weights=self.weight_against, minlength=tasks.size)
        found: dict[int, float | None] = dict.fromkeys(dense_codes(self.node_task)[1].tolist())
        for task, a, t in zip(tasks.tolist(), agree.tolist(), total.tolist(), strict=True):
            found[task] = a / t if t > 0 else None
        return found


def consensus(
    ratings: Ratings, reliability: Mapping[int, float], default: float = 1.0
) -> Consensus:
    """Weighted Borda consensus of every task in `ratings` (see the module docstring);
    labelers missing from `reliability` weigh `default`."""
    code, labelers = dense_codes(ratings.judgement_labeler)
    weights = np.array([reliability.get(int(who), default) for who in labelers], dtype=float)
    judgement_weight = weights[code] if labelers.size else np.zeros(0)

    votes = ratings.votes
    vote_weight = judgement_weight[votes.judgement]
    items = votes.item_count
    for_a = np.bincount(votes.item, weights=vote_weight * (votes.preference > 0), minlength=items)
    for_b = np.bincount(votes.item, weights=vote_weight * (votes.preference < 0), minlength=items)
    ordered = np.bincount(votes.item[votes.preference != 0], minlength=items)

    # Nodes are sorted by task, then response, so a task's nodes are one run in local order.
    node_task, local = ratings.node_task, ratings.node_local
    task_count = ratings.tasks.size
    task_first = np.searchsorted(node_task, np.arange(task_count))
    width = max(ratings.max_responses, 1)
    item_task = votes.item_keys // (width * width)
    node_a = task_first[item_task] + (votes.item_keys // width) % width
    node_b = task_first[item_task] + votes.item_keys % width
    score = np.bincount(node_a, weights=for_a - for_b, minlength=node_task.size)
    score -= np.bincount(node_b, weights=for_a - for_b, minlength=node_task.size)
    score = np.round(score, SCORE_DECIMALS)

    order = np.lexsort((-score, node_task))
    change = np.ones(order.size, dtype=bool)
    change[1:] = (node_task[order][1:] != node_task[order][:-1]) | (
        score[order][1:] != score[order][:-1]
    )
    run = np.cumsum(change) - 1
    # Sorted by task first, a task's best node sits where its first node does in node order.
    level = np.empty(order.size, dtype=np.int64)
    level[order] = run - run[task_first[node_task[order]]]

    sizes = np.diff(np.append(task_first, node_task.size)).astype(np.int64)
    first, second = pairs_within_groups(task_first.astype(np.int64), sizes)
    differ = level[first] != level[second]
    first, second = first[differ], second[differ]
    keys = ratings.item_key(node_task[first], local[first], local[second])
    # A sentinel after the last item stands for "nobody ranked both" (keys are >= 0).
    position = np.searchsorted(votes.item_keys, keys)
    judged = np.append(votes.item_keys, -1)[position] == keys
    pick_a = np.where(judged, np.append(for_a, 0.0)[position], 0.0)
    pick_b = np.where(judged, np.append(for_b, 0.0)[position], 0.0)
    a_wins = level[first] < level[second]
    tasks = ratings.tasks
    return Consensus(
        node_task=tasks[node_task],
        node_response=ratings.node_response,
        node_level=level,
        node_score=score,
        pair_task=tasks[node_task[first]],
        winner=np.where(a_wins, ratings.node_response[first], ratings.node_response[second]),
        loser=np.where(a_wins, ratings.node_response[second], ratings.node_response[first]),
        labelers=np.where(judged, np.append(ordered, 0)[position], 0),
        weight_for=np.where(a_wins, pick_a, pick_b),
        weight_against=np.where(a_wins, pick_b, pick_a),
    )
