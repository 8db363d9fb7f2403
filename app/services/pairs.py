"""Pair expansion: a ranking of K responses gives one (winner, loser) pair per pair of
different ranks, K(K-1)/2 without ties; tied responses give none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RankedResponse:
    response_id: int
    rank: int
    score: int | None


@dataclass(frozen=True)
class ExpandedPair:
    winner_response_id: int
    loser_response_id: int
    # Winner's score minus loser's; None unless both were scored.
    margin: int | None


def expand_pairs(ranked: Sequence[RankedResponse]) -> list[ExpandedPair]:
    ordered = sorted(ranked, key=lambda item: (item.rank, item.response_id))
    pairs = []
    for index, better in enumerate(ordered):
        for worse in ordered[index + 1 :]:
            if better.rank == worse.rank:
                continue
            margin = (
                better.score - worse.score
                if better.score is not None and worse.score is not None
                else None
            )
            pairs.append(ExpandedPair(better.response_id, worse.response_id, margin))
    return pairs


def dense_ranks(ranks: Sequence[int]) -> list[int]:
    """[1, 3, 3, 7] -> [1, 2, 2, 3]: the order and ties kept, the gaps closed."""
    levels = {rank: position for position, rank in enumerate(sorted(set(ranks)), start=1)}
    return [levels[rank] for rank in ranks]
