"""Pair expansion: a ranking of K responses gives one (winner, loser) pair per pair of
different ranks, K(K-1)/2 without ties; tied responses give none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from operator import attrgetter

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
