"""app.services.pairs: a ranking's (winner, loser) pairs, the stored form of a comparison."""

from __future__ import annotations

from app.services.pairs import ExpandedPair, RankedResponse, dense_ranks, expand_pairs


def test_four_ranked_responses_give_six_pairs_best_first() -> None:
    ranked = [RankedResponse(40, 3, 2), RankedResponse(10, 1, 7), RankedResponse(30, 4, 1)]
    ranked.append(RankedResponse(20, 2, 5))

    assert expand_pairs(ranked) == [
        ExpandedPair(10, 20, 2),
        ExpandedPair(10, 40, 5),
        ExpandedPair(10, 30, 6),
        ExpandedPair(20, 40, 3),
        ExpandedPair(20, 30, 4),
        ExpandedPair(40, 30, 1),
    ]


def test_ties_give_no_pair_and_a_missing_score_no_margin() -> None:
    ranked = [
        RankedResponse(5, 1, None),
        RankedResponse(3, 2, 4),
        RankedResponse(4, 2, 6),
        RankedResponse(9, 3, 2),
    ]

    assert expand_pairs(ranked) == [
        ExpandedPair(5, 3, None),
        ExpandedPair(5, 4, None),
        ExpandedPair(5, 9, None),
        ExpandedPair(3, 9, 2),
        ExpandedPair(4, 9, 4),
    ]
    assert expand_pairs([RankedResponse(1, 1, 3), RankedResponse(2, 1, 3)]) == []
    assert expand_pairs([]) == []


def test_dense_ranks_close_the_gaps() -> None:
    assert dense_ranks([1, 3, 3, 7]) == [1, 2, 2, 3]
    assert dense_ranks([2, 2]) == [1, 1]
