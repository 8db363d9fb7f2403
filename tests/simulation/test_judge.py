"""app/simulation/judge.py: the hidden preference, its Likert scores and rankings, the noise
calibrated to human agreement, and simulated demonstrations."""

from __future__ import annotations

import itertools
import random

import pytest

from app.simulation.judge import (
    REALISTIC_NOISE,
    Judge,
    agreement,
    contrast_pairs,
    demonstration,
    likert,
    noise_for_agreement,
    true_utility,
)
from app.simulation.world import POSITIVE, describe, make_prompt

POSITIVE_ANSWER = "The sea is calm and warm."
MIXED_ANSWER = "The sea is calm and grim."
NEGATIVE_ANSWER = "The sea is dull and grim."
GARBAGE = "calm calm warm kind lovely"


@pytest.mark.parametrize(
    ("text", "utility"),
    [
        (POSITIVE_ANSWER, 2.0),
        (MIXED_ANSWER, 0.0),
        (NEGATIVE_ANSWER, -2.0),
        ("THE SEA IS CALM AND WARM.", 2.0),  # any case
        ("The sea is calmly and warmer.", 0.0),  # whole words only
        ("The calm kind sea is warm and lovely.", 2.0),  # held to [-2, 2]
        ("It is bright and rude.", 0.0),
        # Not the answer shape: 5 less, so below any well-formed answer.
        (GARBAGE, -3.0),
        ("The sea is calm and warm. And kind.", -3.0),
        ("The sea is calm and warm", -3.0),
        ("", -5.0),
        ("dull grim cold", -7.0),
    ],
)
def test_true_utility_counts_liked_minus_disliked_words(text: str, utility: float) -> None:
    assert true_utility(text) == utility


def test_likert_scores_follow_utility_and_stay_within_one_to_seven() -> None:
    utilities = [9.0, 2.0, 1.0, 0.34, 0.33, 0.0, -0.33, -1.0, -2.0, -3.0, -9.0]
    assert [likert(u) for u in utilities] == [7, 7, 6, 5, 4, 4, 4, 2, 1, 1, 1]


def test_a_judge_without_noise_ranks_and_scores_by_the_rule() -> None:
    texts = [NEGATIVE_ANSWER, POSITIVE_ANSWER, MIXED_ANSWER, GARBAGE, "Winter is kind and warm."]
    judge = Judge(noise=0.0, seed=4)
    assert judge.rank(texts) == [3, 1, 2, 4, 1]  # equal utilities tie, dense ranks
    assert judge.scores(texts) == [1, 7, 4, 1, 7]
    assert judge.judge(texts).utilities == (-2.0, 2.0, 0.0, -3.0, 2.0)


def test_noisy_rankings_agree_with_scores_and_tie_only_on_equal_utilities() -> None:
    rng = random.Random(3)
    for seed in range(40):
        prompt = make_prompt(rng)
        texts = [demonstration(prompt, rng, 0.5) for _ in range(4)] + [GARBAGE]
        verdict = Judge(REALISTIC_NOISE, seed).judge(texts)
        assert len(set(verdict.ranks)) == len(set(verdict.utilities))
        assert sorted(set(verdict.ranks)) == list(range(1, len(set(verdict.ranks)) + 1))
        for i, j in itertools.permutations(range(len(texts)), 2):
            if verdict.ranks[i] < verdict.ranks[j]:
                assert verdict.utilities[i] > verdict.utilities[j]
                assert verdict.scores[i] >= verdict.scores[j]
        # rank and scores asked separately give the same verdict.
        judge = Judge(REALISTIC_NOISE, seed)
        assert (judge.rank(texts), judge.scores(texts)) == (
            list(verdict.ranks),
            list(verdict.scores),
        )


def test_judges_repeat_themselves_and_differ_from_each_other() -> None:
    texts = [POSITIVE_ANSWER, NEGATIVE_ANSWER, MIXED_ANSWER]
    first = Judge(1.0, seed=1).judge(texts)
    assert Judge(1.0, seed=1).judge(texts) == first
    assert Judge(1.0, seed=2).judge(texts).utilities != first.utilities
    # The noise is the judge's own: the order of texts changes the draw, not the rule.
    assert Judge(0.0, seed=1).rank(list(reversed(texts))) == [2, 3, 1]


@pytest.mark.parametrize("noise", [-0.1, float("nan"), float("inf")])
def test_a_judge_refuses_a_noise_that_is_no_standard_deviation(noise: float) -> None:
    with pytest.raises(ValueError, match="noise is a standard deviation"):
        Judge(noise)


def test_a_judge_refuses_to_judge_nothing() -> None:
    with pytest.raises(ValueError, match="nothing to judge"):
        Judge(0.0).rank([])


def test_contrast_pairs_put_a_liked_answer_against_a_disliked_one_in_either_order() -> None:
    pairs = contrast_pairs(200, seed=0)
    assert pairs[0] == ("The old bridge is bright and warm.", "The old bridge is rude and dreary.")
    assert all(sorted(map(true_utility, pair)) == [-2.0, 2.0] for pair in pairs)
    firsts = [true_utility(pair[0]) for pair in pairs]
    assert (firsts.count(2.0), firsts.count(-2.0)) == (105, 95)


def test_realistic_noise_gives_human_agreement_and_no_noise_full_agreement() -> None:
    pairs = contrast_pairs(10_000, seed=0)
    assert agreement(0.0, pairs) == 1.0
    measured = agreement(REALISTIC_NOISE, pairs)
    assert measured == 0.7365
    assert 0.70 <= measured <= 0.76
    # More noise, less agreement, towards a coin toss.
    assert agreement(1.0, pairs) > measured > agreement(6.0, pairs) > agreement(50.0, pairs)
    assert abs(agreement(50.0, pairs) - 0.5) < 0.02


def test_agreement_is_what_two_judges_ranking_each_pair_would_give() -> None:
    pairs = contrast_pairs(300, seed=2)
    mine, theirs = Judge(2.0, seed=5), Judge(2.0, seed=6)
    same = [
        (mine.rank(pair)[0] < mine.rank(pair)[1]) == (theirs.rank(pair)[0] < theirs.rank(pair)[1])
        for pair in pairs
    ]
    assert agreement(2.0, pairs, seed=5) == sum(same) / len(pairs)


def test_agreement_refuses_a_negative_noise() -> None:
    with pytest.raises(ValueError, match="noise is a standard deviation"):
        agreement(-1.0, contrast_pairs(10))


def test_noise_for_agreement_finds_the_edge_of_the_target() -> None:
    pairs = contrast_pairs(2000, seed=1)
    found = noise_for_agreement(0.73, pairs, seed=0)
    assert agreement(found, pairs) >= 0.73 > agreement(found + 1e-3, pairs)
    assert abs(found - REALISTIC_NOISE) < 0.3
    assert noise_for_agreement(0.9, pairs) < noise_for_agreement(0.8, pairs) < found


def test_pairs_of_equally_good_answers_dilute_agreement_and_need_less_noise() -> None:
    rng = random.Random(0)
    alike = []
    for _ in range(1000):
        prompt = make_prompt(rng)
        alike.append((describe(rng, prompt, POSITIVE), describe(rng, prompt, POSITIVE)))
    contrast = contrast_pairs(1000)
    # Without noise equal answers tie (no pair), with any noise they are a coin toss.
    assert agreement(0.0, contrast + alike) == 1.0
    assert agreement(REALISTIC_NOISE, alike) == 0.524
    assert agreement(REALISTIC_NOISE, contrast + alike) == 0.6385
    assert (
        noise_for_agreement(0.73, contrast + alike)
        < 1.6
        < 3.0
        < noise_for_agreement(0.73, contrast)
    )


@pytest.mark.parametrize("target", [0.5, 0.2, 1.0, 1.5])
def test_noise_for_agreement_refuses_a_target_outside_chance_and_certainty(
    target: float,
) -> None:
    with pytest.raises(ValueError, match=r"between 0\.5 and 1"):
        noise_for_agreement(target, contrast_pairs(10))


def test_agreement_needs_pairs_the_judges_can_order() -> None:
    with pytest.raises(ValueError, match="no pair was ordered"):
        agreement(0.0, [(POSITIVE_ANSWER, "Winter is kind and warm.")])


def test_demonstrations_are_helpful_in_the_share_asked() -> None:
    def utilities(share: float) -> list[float]:
        rng = random.Random(0)
        return [true_utility(demonstration(make_prompt(rng), rng, share)) for _ in range(1000)]

    half = utilities(0.5)
    assert (half.count(2.0), half.count(-2.0)) == (478, 522)
    assert set(utilities(1.0)) == {2.0}
    assert set(utilities(0.0)) == {-2.0}
    rng = random.Random(1)
    assert [demonstration("Tell me about the sea.", rng, 0.5) for _ in range(4)] == [
        "The sea is calm and warm.",
        "The sea is peaceful and pleasant.",
        "The sea is noisy and grim.",
        "The sea is gentle and pleasant.",
    ]


@pytest.mark.parametrize("share", [-0.1, 1.1])
def test_demonstration_refuses_a_share_that_is_no_probability(share: float) -> None:
    with pytest.raises(ValueError, match="helpful_share is a probability"):
        demonstration("Describe winter.", random.Random(0), share)
