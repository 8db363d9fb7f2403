"""Pair expansion: a ranking of K responses gives one (winner, loser) pair per pair of
different ranks, K(K-1)/2 without ties; tied responses give none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from operator import attrgetter

import numpy as np

# Plain slotted classes: every submission expands its ranking, and a bulk import or a
# benchmark expands a million of them; frozen dataclasses cost three times as much to make.


@dataclass(slots=True)
class RankedResponse:
    response_id: int
    rank: int
    score: int | None


@dataclass(slots=True)
class ExpandedPair:
    winner_response_id: int
    loser_response_id: int
    # Winner's score minus loser's; None unless both were scored.
    margin: int | None


_BEST_FIRST = attrgetter("rank", "response_id")


def expand_pairs(ranked: Sequence[RankedResponse]) -> list[ExpandedPair]:
    """Pairs best first: by the winner's (rank, id), then the loser's."""
    return [
        ExpandedPair(
            better.response_id,
            worse.response_id,
            None if better.score is None or worse.score is None else better.score - worse.score,
        )
        for better, worse in combinations(sorted(ranked, key=_BEST_FIRST), 2)
        if better.rank != worse.rank
    ]


def dense_ranks(ranks: Sequence[int]) -> list[int]:
    """[1, 3, 3, 7] -> [1, 2, 2, 3]: the order and ties kept, the gaps closed."""
    levels = {rank: position for position, rank in enumerate(sorted(set(ranks)), start=1)}
    return [levels[rank] for rank in ranks]


@dataclass(slots=True)
class PairArrays:
    """Many comparisons' pairs as columns, comparison by comparison, each in expand_pairs'
    order. `margins` is NaN where either response was unscored."""

    comparison_ids: np.ndarray
    winners: np.ndarray
    losers: np.ndarray
    margins: np.ndarray


def expand_pair_arrays(
    comparison_ids: np.ndarray, response_ids: np.ndarray, ranks: np.ndarray, scores: np.ndarray
) -> PairArrays:
    """expand_pairs over a whole project at once (exports, re-derivation, benchmarks): one row
    per ranked item, in any order; `scores` uses 0 for "not scored".

    A million comparisons take about a second this way, against twenty through expand_pairs:
    every comparison with K items is a row of a (comparisons, K) matrix, and its K(K-1)/2
    candidate pairs are the same column pairs for all of them."""
    comparison_ids = np.asarray(comparison_ids, dtype=np.int64)
    response_ids = np.asarray(response_ids, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.int64)
    # Best first within each comparison, as expand_pairs sorts: by rank, then response id.
    order = np.lexsort((response_ids, ranks, comparison_ids))
    comparison_ids, response_ids = comparison_ids[order], response_ids[order]
    ranks, scores = ranks[order], scores[order]
    starts = np.flatnonzero(np.r_[True, comparison_ids[1:] != comparison_ids[:-1]])
    sizes = np.diff(np.r_[starts, comparison_ids.size])

    parts: list[tuple[np.ndarray, ...]] = []
    for size in np.unique(sizes):
        if size < 2:
            continue
        rows = starts[sizes == size][:, None] + np.arange(size)  # (comparisons, K) item indexes
        first, second = np.triu_indices(size, k=1)  # combinations(range(K), 2), in its order
        better, worse = rows[:, first].ravel(), rows[:, second].ravel()
        keep = ranks[better] != ranks[worse]
        better, worse = better[keep], worse[keep]
        scored = (scores[better] > 0) & (scores[worse] > 0)
        margins = np.where(scored, scores[better] - scores[worse], np.nan)
        parts.append((comparison_ids[better], response_ids[better], response_ids[worse], margins))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return PairArrays(empty, empty, empty, np.zeros(0))
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    # Comparisons of different sizes were expanded apart: put them back in comparison order,
    # keeping each one's pairs in their order.
    back = np.argsort(columns[0], kind="stable")
    return PairArrays(*(column[back] for column in columns))
