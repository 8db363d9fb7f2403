"""app.services.pairs: a ranking's (winner, loser) pairs, the stored form of a comparison."""

from __future__ import annotations

import numpy as np

from app.services.pairs import (
    ExpandedPair,
    PairArrays,
    RankedResponse,
    dense_ranks,
    expand_pair_arrays,
    expand_pairs,
)


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


def as_lists(found: PairArrays) -> list[tuple[int, int, int, int | None]]:
    return [
        (int(comparison), int(winner), int(loser), None if np.isnan(margin) else int(margin))
        for comparison, winner, loser, margin in zip(
            found.comparison_ids, found.winners, found.losers, found.margins, strict=True
        )
    ]


def test_pair_arrays_give_the_pairs_of_the_example_above_in_the_same_order() -> None:
    # Two comparisons, rows shuffled: 7 is the four-response example, 3 the one with ties.
    rows = [
        (7, 40, 3, 2), (3, 9, 3, 2), (7, 10, 1, 7), (3, 5, 1, 0), (7, 30, 4, 1),
        (3, 4, 2, 6), (7, 20, 2, 5), (3, 3, 2, 4), (8, 1, 1, 3), (8, 2, 1, 3), (9, 6, 1, 1),
    ]  # fmt: skip
    columns = [np.array(column) for column in zip(*rows, strict=True)]

    found = expand_pair_arrays(*columns)

    assert as_lists(found) == [
        (3, 5, 3, None), (3, 5, 4, None), (3, 5, 9, None), (3, 3, 9, 2), (3, 4, 9, 4),
        (7, 10, 20, 2), (7, 10, 40, 5), (7, 10, 30, 6), (7, 20, 40, 3), (7, 20, 30, 4),
        (7, 40, 30, 1),
    ]  # fmt: skip
    empty = expand_pair_arrays(*(np.zeros(0, dtype=np.int64) for _ in range(4)))
    assert as_lists(empty) == []


def test_pair_arrays_equal_expand_pairs_on_random_rankings_with_ties() -> None:
    rng = np.random.default_rng(7)
    rows = []
    expected = []
    for comparison in rng.permutation(400) + 1:
        size = int(rng.integers(2, 10))
        ids = rng.choice(10_000, size=size, replace=False) + 1
        ranks = rng.integers(1, size + 1, size=size)
        scores = rng.integers(0, 8, size=size)  # 0: not scored
        ranked = [
            RankedResponse(int(i), int(r), int(s) or None)
            for i, r, s in zip(ids, ranks, scores, strict=True)
        ]
        expected.append(
            (
                int(comparison),
                [
                    (p.winner_response_id, p.loser_response_id, p.margin)
                    for p in expand_pairs(ranked)
                ],
            )
        )
        rows.extend(zip([comparison] * size, ids, ranks, scores, strict=True))
    order = rng.permutation(len(rows))
    columns = [np.array(column)[order] for column in zip(*rows, strict=True)]

    found = as_lists(expand_pair_arrays(*columns))

    assert found == [
        (comparison, *pair) for comparison, pairs in sorted(expected) for pair in pairs
    ]
    assert len(found) > 2000
