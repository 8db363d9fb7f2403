"""app.services.agreement.consensus: reliability weights and the weighted Borda consensus."""

from __future__ import annotations

from fractions import Fraction as F

import numpy as np
import pytest
from pytest import approx

from app.services.agreement import metrics
from app.services.agreement.consensus import (
    RELIABILITY_PRIOR,
    consensus,
    labeler_reliability,
)
from app.services.agreement.metrics import LabelerAgreement
from app.services.agreement.ratings import Ratings
from tests.services.agreement.test_metrics import ANN, BOB, CAT, DAN, JUDGEMENTS, build

# Reliability = (agreeing + 10 * overall) / (comparisons + 10), overall = 10/27:
OVERALL = F(10, 27)
WA = (7 + 10 * OVERALL) / (17 + 10)  # 289/729
WB = (7 + 10 * OVERALL) / (12 + 10)  # 289/594
WC = (5 + 10 * OVERALL) / (8 + 10)  # 235/486
WD = (1 + 10 * OVERALL) / (17 + 10)  # 127/729


@pytest.fixture
def ratings() -> Ratings:
    return build()


@pytest.fixture
def reliability(ratings: Ratings) -> dict[int, float]:
    return labeler_reliability(
        metrics.labeler_agreement(ratings), metrics.pairwise_agreement(ratings).rate
    )


def test_reliability_is_agreement_smoothed_toward_the_overall_rate(
    reliability: dict[int, float],
) -> None:
    assert RELIABILITY_PRIOR == 10
    assert reliability == {
        ANN: approx(289 / 729),
        BOB: approx(289 / 594),
        CAT: approx(235 / 486),
        DAN: approx(127 / 729),
    }


def test_reliability_without_any_overlap_is_one_for_everybody() -> None:
    agreement = {1: LabelerAgreement(3, 0, 0, 0), 2: LabelerAgreement(1, 0, 0, 0)}

    assert labeler_reliability(agreement, None) == {1: 1.0, 2: 1.0}


def pairs_of(result, task: int) -> dict[tuple[int, int], tuple[int, float, float]]:
    return {
        (w, lo): (n, s, weight)
        for t, w, lo, n, s, weight in zip(
            result.pair_task.tolist(),
            result.winner.tolist(),
            result.loser.tolist(),
            result.labelers.tolist(),
            result.support.tolist(),
            result.weight.tolist(),
            strict=True,
        )
        if t == task
    }


def test_consensus_rankings_outvote_the_reversing_labeler(
    ratings: Ratings, reliability: dict[int, float]
) -> None:
    # Net weighted wins (Borda): T1 r1 3wa+3wb-3wd, r2 wa-wd, r3 wd-wa, r4 -(r1): r1>r2>r3>r4.
    # T2 r5 2wa-2wd ~ 0.44, r6 2wc ~ 0.97, r7 -2wa-2wc+2wd ~ -1.41: r6 > r5 > r7.
    # T3 r8 2wb+2wc, r9 -wc, r10 -2wb-wc: r8 > r9 > r10.
    result = consensus(ratings, reliability)

    assert result.rankings() == {
        1: [[1], [2], [3], [4]],
        2: [[6], [5], [7]],
        3: [[8], [9], [10]],
    }
    scores = dict(zip(result.node_response.tolist(), result.node_score.tolist(), strict=True))
    assert scores[6] == approx(float(2 * WC))
    assert scores[5] == approx(float(2 * WA - 2 * WD))


def test_consensus_support_and_weight_per_pair(
    ratings: Ratings, reliability: dict[int, float]
) -> None:
    result = consensus(ratings, reliability)
    t1, t2, t3 = pairs_of(result, 1), pairs_of(result, 2), pairs_of(result, 3)

    # T1: ann and bob for r1 over r2, dan against: (wa+wb)/(wa+wb+wd) = 14161/16955.
    strong = (WA + WB) / (WA + WB + WD)
    assert strong == F(14161, 16955)
    assert t1 == {
        (1, 2): (3, approx(float(strong)), approx(float(2 * strong - 1))),
        (1, 3): (3, approx(float(strong)), approx(float(2 * strong - 1))),
        (1, 4): (3, approx(float(strong)), approx(float(2 * strong - 1))),
        # bob tied r2 and r3: ann for, dan against: wa/(wa+wd) = 289/416, weight 81/208.
        (2, 3): (2, approx(289 / 416), approx(81 / 208)),
        (2, 4): (3, approx(float(strong)), approx(float(2 * strong - 1))),
        (3, 4): (3, approx(float(strong)), approx(float(2 * strong - 1))),
    }
    # T2 r6 over r5: cat and dan for, ann against; r6, r5 over r7: ann and cat for, dan not.
    everyone = WA + WC + WD
    r6_over_r5 = (WC + WD) / everyone
    over_r7 = (WA + WC) / everyone
    assert t2 == {
        (6, 5): (3, approx(float(r6_over_r5)), approx(float(2 * r6_over_r5 - 1))),
        (6, 7): (3, approx(float(over_r7)), approx(float(2 * over_r7 - 1))),
        (5, 7): (3, approx(float(over_r7)), approx(float(2 * over_r7 - 1))),
    }
    # T3: nobody disagrees; cat tied r9 and r10, so only bob ordered that pair.
    assert t3 == {(8, 9): (2, 1.0, 1.0), (8, 10): (2, 1.0, 1.0), (9, 10): (1, 1.0, 1.0)}


def test_task_support_pools_the_weighted_votes_on_its_consensus_pairs(
    ratings: Ratings, reliability: dict[int, float]
) -> None:
    # T1: for = 5(wa+wb) + wa, against = 6wd. T2: for = (wc+wd) + 2(wa+wc), all = 3(wa+wc+wd).
    support = consensus(ratings, reliability).task_support()

    assert support == {
        1: approx(float((6 * WA + 5 * WB) / (6 * WA + 5 * WB + 6 * WD))),
        2: approx(float((WC + WD + 2 * (WA + WC)) / (3 * (WA + WC + WD)))),
        3: 1.0,
    }


def test_equal_weights_make_a_split_task_a_tie_with_no_pairs() -> None:
    ratings = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: 1, 2: 1}, 1, 1, 1),
            (1, BOB, {1: 2, 2: 1}, {1: 1, 2: 1}, 1, 1, 1),
        ]
    )

    result = consensus(ratings, {ANN: 0.5, BOB: 0.5})

    assert result.rankings() == {1: [[1, 2]]}
    assert result.winner.size == 0
    assert result.task_support() == {1: None}


def test_a_reliable_labeler_outweighs_an_unreliable_one() -> None:
    ratings = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: 1, 2: 1}, 1, 1, 1),
            (1, BOB, {1: 2, 2: 1}, {1: 1, 2: 1}, 1, 1, 1),
        ]
    )

    result = consensus(ratings, {ANN: 0.75, BOB: 0.25})

    assert result.rankings() == {1: [[1], [2]]}
    assert pairs_of(result, 1) == {(1, 2): (2, 0.75, 0.5)}


def test_a_pair_nobody_ordered_has_no_support_and_weight_zero() -> None:
    # ann saw r1 and r2, bob r2 and r3: the consensus orders r1 and r3, which nobody compared.
    ratings = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: 1, 2: 1}, 1, 1, 1),
            (1, BOB, {2: 1, 3: 2}, {2: 1, 3: 1}, 1, 1, 1),
        ]
    )

    result = consensus(ratings, {})

    # Net wins r1 +1, r2 -1 +1 = 0, r3 -1.
    assert result.rankings() == {1: [[1], [2], [3]]}
    found = pairs_of(result, 1)
    assert found[1, 3][0] == 0
    assert np.isnan(found[1, 3][1])
    assert found[1, 3][2] == 0.0


def test_no_ratings_no_consensus() -> None:
    result = consensus(Ratings.empty(), {})

    assert result.rankings() == {}
    assert result.task_support() == {}
    assert result.winner.size == 0


def test_the_raw_judgements_are_untouched(ratings: Ratings) -> None:
    before = ratings.rank.copy()

    consensus(ratings, {ANN: 1.0})

    assert np.array_equal(ratings.rank, before)
    assert len(ratings) == sum(len(j[2]) for j in JUDGEMENTS)
