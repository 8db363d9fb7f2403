"""app.services.agreement.metrics and ratings: every figure of a hand-made example, by hand.

The example is the one tests/services/agreement/world.py describes, with plain ids: tasks 1-3,
labelers ANN BOB CAT DAN, responses 1-10, labels queue (1 chat, 2 gold), version (1, 2) and day.
"""

from __future__ import annotations

import itertools
import math

import krippendorff
import numpy as np
import pytest
from pytest import approx

from app.services.agreement import metrics
from app.services.agreement.metrics import (
    GoldAccuracy,
    LabelerAgreement,
    MeanTau,
    PairwiseAgreement,
)
from app.services.agreement.ratings import Ratings, dense_index, pairs_within_groups

ANN, BOB, CAT, DAN = 11, 12, 13, 14
NAN = float("nan")

# (task, labeler, {response: rank}, {response: score}, queue, version, day)
JUDGEMENTS = [
    (1, ANN, {1: 1, 2: 2, 3: 3, 4: 4}, {1: 7, 2: 5, 3: 3, 4: 1}, 1, 1, 1),
    (1, BOB, {1: 1, 2: 2, 3: 2, 4: 3}, {1: 6, 2: 4, 3: 4, 4: 2}, 1, 1, 1),
    (1, DAN, {1: 4, 2: 3, 3: 2, 4: 1}, {1: 1, 2: 3, 3: 5, 4: 7}, 1, 1, 2),
    (2, ANN, {5: 1, 6: 2, 7: 3}, {5: 6, 6: 5, 7: 2}, 1, 2, 2),
    (2, CAT, {5: 2, 6: 1, 7: 3}, {5: 5, 6: 6, 7: 2}, 1, 1, 2),
    (2, DAN, {5: 3, 6: 2, 7: 1}, {5: 2, 6: 4, 7: 6}, 1, 2, 2),
    (3, BOB, {8: 1, 9: 2, 10: 3}, {8: 7, 9: 4, 10: 1}, 2, 2, 1),
    (3, CAT, {8: 1, 9: 2, 10: 2}, {8: 6, 9: 3, 10: None}, 2, 2, 3),
]
GOLD = {3: [[8], [9], [10]]}
SQRT30, SQRT6 = math.sqrt(30), math.sqrt(6)


def build(judgements: list = JUDGEMENTS) -> Ratings:
    rows = [
        (task, labeler, response, rank, scores[response], queue, version, day)
        for task, labeler, ranks, scores, queue, version, day in judgements
        for response, rank in ranks.items()
    ]
    task, labeler, response, rank, score, queue, version, day = zip(*rows, strict=True)
    return Ratings.build(
        task, labeler, response, rank, score, queue=queue, version=version, day=day
    )


@pytest.fixture
def ratings() -> Ratings:
    # Rows given in a shuffled order: build sorts them.
    return build(JUDGEMENTS[::-1])


# --- pairwise agreement -----------------------------------------------------------------------


def test_overall_pairwise_agreement_is_the_micro_average(ratings: Ratings) -> None:
    # T1 5 of 16 + T2 3 of 9 + T3 2 of 2 (see world.py) = 10 of 27, on 6 + 3 + 2 response pairs.
    found = metrics.pairwise_agreement(ratings)

    assert found == PairwiseAgreement(agreeing=10, labeler_pairs=27, response_pairs=11)
    assert found.rate == approx(10 / 27)


def test_pairwise_agreement_per_queue(ratings: Ratings) -> None:
    # chat = T1 + T2: 8 of 25 on 9 response pairs; gold = T3: 2 of 2.
    assert metrics.pairwise_agreement_by(ratings, "queue") == {
        1: PairwiseAgreement(8, 25, 9),
        2: PairwiseAgreement(2, 2, 2),
    }


def test_pairwise_agreement_per_version_compares_only_judgements_of_that_version(
    ratings: Ratings,
) -> None:
    # v1: T1 (ann, bob, dan) 5 of 16; cat is alone on T2 under v1.
    # v2: T2 ann vs dan disagree on (5,6) (5,7) (6,7): 0 of 3; T3 bob vs cat 2 of 2 -> 2 of 5.
    assert metrics.pairwise_agreement_by(ratings, "version") == {
        1: PairwiseAgreement(5, 16, 6),
        2: PairwiseAgreement(2, 5, 5),
    }


def test_a_tie_leaves_the_labeler_out_of_that_pair_only() -> None:
    # a: 1 > 2 > 3; b: 1 = 2 > 3; c: 2 > 1 > 3.
    # (1,2): a vs c disagree (b tied): 0 of 1. (1,3), (2,3): all three agree: 3 of 3 each.
    ratings = build(
        [
            (1, 1, {1: 1, 2: 2, 3: 3}, {1: 1, 2: 1, 3: 1}, 1, 1, 1),
            (1, 2, {1: 1, 2: 1, 3: 2}, {1: 1, 2: 1, 3: 1}, 1, 1, 1),
            (1, 3, {1: 2, 2: 1, 3: 3}, {1: 1, 2: 1, 3: 1}, 1, 1, 1),
        ]
    )

    assert metrics.pairwise_agreement(ratings) == PairwiseAgreement(6, 7, 3)


def test_pairwise_agreement_dated_by_the_later_judgement(ratings: Ratings) -> None:
    # Day 1: ann-bob on T1, both day 1: 5 pairs (all but the tied (2,3)), all agree.
    # Day 2: ann-dan T1 0 of 6, bob-dan T1 0 of 5, T2 (all day 2) 3 of 9 -> 3 of 20.
    # Day 3: bob (day 1) - cat (day 3) on T3: 2 of 2.
    assert metrics.pairwise_agreement_dated(ratings, "day") == {
        1: PairwiseAgreement(5, 5, 5),
        2: PairwiseAgreement(3, 20, 9),
        3: PairwiseAgreement(2, 2, 2),
    }


def test_per_labeler_agreement_against_the_others(ratings: Ratings) -> None:
    # ann: T1 (1,2) (1,3) (1,4) (2,4) (3,4) bob agrees, dan not: 5 of 10; (2,3) dan: 0 of 1;
    #      T2 (5,6) cat, dan disagree: 0 of 2; (5,7) (6,7) cat agrees: 2 of 4 -> 7 of 17.
    # bob: T1 five pairs, ann agrees: 5 of 10; T3 (8,9) (8,10) cat agrees: 2 of 2 -> 7 of 12.
    # cat: T2 (5,6) dan agrees, ann not; (5,7) (6,7) ann agrees, dan not: 3 of 6; T3 2 of 2.
    # dan: T1 0 of 11; T2 (5,6) cat agrees: 1 of 6 -> 1 of 17.
    found = metrics.labeler_agreement(ratings)

    assert found == {
        ANN: LabelerAgreement(judgements=2, response_pairs=9, comparisons=17, agreeing=7),
        BOB: LabelerAgreement(judgements=2, response_pairs=7, comparisons=12, agreeing=7),
        CAT: LabelerAgreement(judgements=2, response_pairs=5, comparisons=8, agreeing=5),
        DAN: LabelerAgreement(judgements=2, response_pairs=9, comparisons=17, agreeing=1),
    }
    assert [found[who].rate for who in (ANN, BOB, CAT, DAN)] == [
        approx(7 / 17),
        approx(7 / 12),
        approx(5 / 8),
        approx(1 / 17),
    ]


def naive_pairwise(judgements: list) -> tuple[int, int]:
    """The definition, spelled out with loops: for the cross-check below."""
    agreeing = total = 0
    tasks = {j[0] for j in judgements}
    for task in tasks:
        mine = [j for j in judgements if j[0] == task]
        responses = sorted({r for j in mine for r in j[2]})
        for a, b in itertools.combinations(responses, 2):
            votes = [
                np.sign(j[2][b] - j[2][a])
                for j in mine
                if a in j[2] and b in j[2] and j[2][a] != j[2][b]
            ]
            for u, v in itertools.combinations(votes, 2):
                total += 1
                agreeing += int(u == v)
    return agreeing, total


def test_vectorised_pairwise_agreement_matches_the_definition_on_random_data() -> None:
    rng = np.random.default_rng(7)
    judgements = []
    for task in range(40):
        size = int(rng.integers(2, 6))
        responses = list(range(task * 10, task * 10 + size))
        for labeler in rng.choice(8, size=int(rng.integers(1, 6)), replace=False):
            shown = [r for r in responses if rng.random() < 0.9] or responses[:1]
            ranks = {r: int(rng.integers(1, size + 1)) for r in shown}
            judgements.append((task, int(labeler), ranks, dict.fromkeys(shown, 4), 1, 1, 1))

    found = metrics.pairwise_agreement(build(judgements))

    assert (found.agreeing, found.labeler_pairs) == naive_pairwise(judgements)


# --- scores: alpha ----------------------------------------------------------------------------

#             r1   r2   r3   r4   r5   r6   r7   r8   r9   r10
MATRIX = {
    ANN: [7, 5, 3, 1, 6, 5, 2, NAN, NAN, NAN],
    BOB: [6, 4, 4, 2, NAN, NAN, NAN, 7, 4, 1],
    CAT: [NAN, NAN, NAN, NAN, 5, 6, 2, 6, 3, NAN],
    DAN: [1, 3, 5, 7, 2, 4, 6, NAN, NAN, NAN],
}


def direct_alpha(columns: slice | list[int], coders: tuple[int, ...] = (ANN, BOB, CAT, DAN)):
    data = np.array([MATRIX[coder] for coder in coders], dtype=float)[:, columns]
    return krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")


def test_alpha_equals_krippendorff_on_the_hand_built_matrix(ratings: Ratings) -> None:
    assert metrics.ordinal_alpha(ratings) == approx(direct_alpha(slice(None)))


def test_alpha_per_queue_and_version(ratings: Ratings) -> None:
    # Queue chat: r1-r7; gold: r8-r10 (r10 scored by bob only).
    assert metrics.ordinal_alpha_by(ratings, "queue") == {
        1: approx(direct_alpha(slice(0, 7))),
        2: approx(direct_alpha(slice(7, 10))),
    }
    # v1: T1 by ann, bob, dan (cat's v1 scores on T2 have no second coder);
    # v2: T2 by ann and dan, T3 by bob and cat.
    v2 = np.array(
        [
            MATRIX[ANN][4:7] + [NAN] * 3,
            MATRIX[DAN][4:7] + [NAN] * 3,
            [NAN] * 3 + MATRIX[BOB][7:10],
            [NAN] * 3 + MATRIX[CAT][7:10],
        ]
    )
    assert metrics.ordinal_alpha_by(ratings, "version") == {
        1: approx(direct_alpha(slice(0, 4), (ANN, BOB, DAN))),
        2: approx(krippendorff.alpha(reliability_data=v2, level_of_measurement="ordinal")),
    }


def test_alpha_is_none_without_two_scores_of_one_unit_or_without_variation() -> None:
    alone = build([(1, ANN, {1: 1, 2: 2}, {1: 7, 2: 1}, 1, 1, 1)])
    same = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: 4, 2: 4}, 1, 1, 1),
            (1, BOB, {1: 1, 2: 2}, {1: 4, 2: 4}, 1, 1, 1),
        ]
    )
    unscored = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: None, 2: None}, 1, 1, 1),
            (1, BOB, {1: 1, 2: 2}, {1: None, 2: None}, 1, 1, 1),
        ]
    )

    assert metrics.ordinal_alpha(alone) is None
    assert metrics.ordinal_alpha(same) is None
    assert metrics.ordinal_alpha(unscored) is None


# --- rankings: Kendall's tau-b ----------------------------------------------------------------

# Per task and labeler pair (ranks over the task's responses, from JUDGEMENTS):
#   T1 ann-bob 5/sqrt(6*5), ann-dan -1, bob-dan -5/sqrt(30)
#   T2 ann-cat (2-1)/3 = 1/3, ann-dan -1, cat-dan (1-2)/3 = -1/3
#   T3 bob-cat 2/sqrt(3*2)
TAUS = {
    (1, ANN, BOB): 5 / SQRT30,
    (1, ANN, DAN): -1.0,
    (1, BOB, DAN): -5 / SQRT30,
    (2, ANN, CAT): 1 / 3,
    (2, ANN, DAN): -1.0,
    (2, CAT, DAN): -1 / 3,
    (3, BOB, CAT): 2 / SQRT6,
}


def test_every_labeler_pair_tau_matches_kendall_tau_b(ratings: Ratings) -> None:
    taus = metrics.kendall_taus(ratings)
    found = {
        (
            int(ratings.judgement_task[u]),
            int(ratings.judgement_labeler[u]),
            int(ratings.judgement_labeler[v]),
        ): tau
        for u, v, tau in zip(taus.judgement_u, taus.judgement_v, taus.tau, strict=True)
    }
    ranks = {(j[0], j[1]): j[2] for j in JUDGEMENTS}

    assert found == {key: approx(value) for key, value in TAUS.items()}
    for (task, a, b), tau in found.items():
        items = sorted(ranks[task, a])
        direct = metrics.kendall_tau_b(
            [ranks[task, a][i] for i in items], [ranks[task, b][i] for i in items]
        )
        assert tau == approx(direct)


def test_mean_tau_overall_per_queue_per_version_and_task_minimum(ratings: Ratings) -> None:
    # Sum of the seven: -2 + 2/sqrt(6).
    assert metrics.mean_kendall_tau(ratings) == MeanTau(approx((-2 + 2 / SQRT6) / 7), 7)
    # chat: six pairs summing to -2; gold: one.
    assert metrics.mean_kendall_tau_by(ratings, "queue") == {
        1: MeanTau(approx(-2 / 6), 6),
        2: MeanTau(approx(2 / SQRT6), 1),
    }
    # v1: T1's three pairs sum to -1; v2: T2 ann-dan -1 and T3 bob-cat.
    assert metrics.mean_kendall_tau_by(ratings, "version") == {
        1: MeanTau(approx(-1 / 3), 3),
        2: MeanTau(approx((-1 + 2 / SQRT6) / 2), 2),
    }
    assert metrics.task_min_tau(ratings) == {1: -1.0, 2: -1.0, 3: approx(2 / SQRT6)}


def test_tau_is_undefined_when_one_ranking_is_all_ties() -> None:
    ratings = build(
        [
            (1, ANN, {1: 1, 2: 2}, {1: 1, 2: 1}, 1, 1, 1),
            (1, BOB, {1: 1, 2: 1}, {1: 1, 2: 1}, 1, 1, 1),
        ]
    )

    assert metrics.mean_kendall_tau(ratings) == MeanTau(None, 0)
    assert metrics.task_min_tau(ratings) == {}


# --- gold -------------------------------------------------------------------------------------


def test_gold_accuracy_counts_a_tie_on_a_gold_ordered_pair_as_wrong(ratings: Ratings) -> None:
    # Gold r8 > r9 > r10: pairs (8,9) (8,10) (9,10). bob orders all three right: 3 of 3;
    # cat ties r9 and r10: 2 of 3. ann and dan judged no gold task.
    found = metrics.gold_accuracy(ratings, GOLD)

    assert found == {BOB: GoldAccuracy(3, 3), CAT: GoldAccuracy(2, 3)}
    assert found[CAT].rate == approx(2 / 3)


def test_gold_pairs_the_answer_ties_or_the_labeler_did_not_see_are_skipped(
    ratings: Ratings,
) -> None:
    # Gold [[8, 9], [10], [99]]: (8,10) (9,10) ordered; (8,9) tied; 99 never shown.
    # bob: both right; cat: (8,10) right, (9,10) tied -> wrong.
    found = metrics.gold_accuracy(ratings, {3: [[8, 9], [10], [99]], 42: [[1], [2]]})

    assert found == {BOB: GoldAccuracy(2, 2), CAT: GoldAccuracy(1, 2)}


# --- empty and edge cases ---------------------------------------------------------------------


def test_no_ratings_gives_zero_counts_and_no_figures() -> None:
    empty = Ratings.empty()

    assert metrics.pairwise_agreement(empty) == PairwiseAgreement(0, 0, 0)
    assert metrics.pairwise_agreement(empty).rate is None
    assert metrics.pairwise_agreement_by(Ratings.build([], [], [], [], [], queue=[]), "queue") == {}
    assert metrics.labeler_agreement(empty) == {}
    assert metrics.ordinal_alpha(empty) is None
    assert metrics.mean_kendall_tau(empty) == MeanTau(None, 0)
    assert metrics.task_min_tau(empty) == {}
    assert metrics.gold_accuracy(empty, GOLD) == {}


def test_one_labeler_per_task_has_no_agreement_to_measure() -> None:
    ratings = build(JUDGEMENTS[:1] + JUDGEMENTS[3:4])

    assert metrics.pairwise_agreement(ratings) == PairwiseAgreement(0, 0, 0)
    assert metrics.labeler_agreement(ratings) == {ANN: LabelerAgreement(2, 0, 0, 0)}
    assert metrics.labeler_agreement(ratings)[ANN].rate is None


def test_a_repeated_judgement_is_refused() -> None:
    with pytest.raises(ValueError, match="judged the same response of a task twice"):
        build(JUDGEMENTS[:1] * 2)


def test_unranked_responses_make_no_votes() -> None:
    ratings = build(
        [
            (1, ANN, {1: 1, 2: None, 3: 2}, {1: 1, 2: 1, 3: 1}, 1, 1, 1),
            (1, BOB, {1: 1, 2: 2, 3: 3}, {1: 1, 2: 1, 3: 1}, 1, 1, 1),
        ]
    )

    # Only (1,3) is ordered by both.
    assert metrics.pairwise_agreement(ratings) == PairwiseAgreement(1, 1, 1)


def test_pairs_within_groups_and_dense_index() -> None:
    first, second = pairs_within_groups(np.array([0, 3, 5]), np.array([3, 2, 1]))
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (1, 2),
        (3, 4),
    ]
    small, small_keys = dense_index(np.array([7, 3, 7, 9]))
    wide, wide_keys = dense_index(np.array([7, 3, 7, 10**15]))
    assert (small.tolist(), small_keys.tolist()) == ([1, 0, 1, 2], [3, 7, 9])
    assert (wide.tolist(), wide_keys.tolist()) == ([1, 0, 1, 2], [3, 7, 10**15])
