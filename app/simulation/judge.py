"""The simulated labelers' hidden preference, and the noise that makes them human enough.

The rule (`true_utility`): an answer is worth the number of POSITIVE words in it minus the
number of NEGATIVE words (whole words, any case), held to [-2, 2]; so "The sea is calm and
warm." is worth 2, "The sea is calm and grim." 0 and "The sea is dull and grim." -2. A text
that is not one sentence of the world's answer shape ("<subject> is <word> and <word>.") loses
SHAPE_PENALTY more, so a garbled sample (worth at most -3) never beats a well-formed answer
(worth at least -2), whatever words it repeats. A tiny model learns this rule from a few hundred
pairs.

A `Judge` adds Gaussian noise of standard deviation `noise` to each utility before ranking and
scoring, so two judges (two seeds) sometimes disagree; `REALISTIC_NOISE` makes two of them
agree on about 73% of positive-against-negative pairs, the rate InstructGPT reports between
its labelers (test: tests/simulation/test_judge.py)."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.simulation.world import NEGATIVE, POSITIVE, describe, make_prompt

SHAPE = re.compile(r"\s*[a-z][a-z ]* is [a-z]+ and [a-z]+\.\s*", re.IGNORECASE)
WORD = re.compile(r"[a-z]+")
SHAPE_PENALTY = 5.0
MAX_UTILITY = 2
# Likert scores: 4 is neutral, each unit of (noisy) utility is worth SCORE_STEP points.
NEUTRAL_SCORE = 4
SCORE_STEP = 1.5
# Two judges with this noise agree on ~73% of positive-vs-negative pairs (0.7305 in theory:
# each orders a pair rightly with probability Phi(4 / (2.85 * sqrt 2)) = 0.8395).
REALISTIC_NOISE = 2.85

_POSITIVE = frozenset(POSITIVE)
_NEGATIVE = frozenset(NEGATIVE)


def true_utility(text: str) -> float:
    """The hidden preference (see the module docstring): higher is better."""
    words = WORD.findall(text.lower())
    value = sum(word in _POSITIVE for word in words) - sum(word in _NEGATIVE for word in words)
    value = max(-MAX_UTILITY, min(MAX_UTILITY, value))
    return float(value) if SHAPE.fullmatch(text) else value - SHAPE_PENALTY


def likert(utility: float) -> int:
    """A 1-7 score for a (noisy) utility: 4 plus SCORE_STEP per unit, rounded half away from
    zero and held to 1..7; never lower for a higher utility. Utility 2 -> 7, 1 -> 6, 0 -> 4,
    -1 -> 2, -2 and below -> 1."""
    offset = SCORE_STEP * utility
    steps = math.copysign(math.floor(abs(offset) + 0.5), offset)
    return int(max(1, min(7, NEUTRAL_SCORE + steps)))


@dataclass(frozen=True)
class Judgement:
    """One judge's verdict on a list of texts, position by position."""

    utilities: tuple[float, ...]  # the noisy utilities the verdict follows
    ranks: tuple[int, ...]  # 1 is best; equal utilities share a rank (dense: 1, 1, 2)
    scores: tuple[int, ...]  # 1-7, never lower for a better rank


class Judge:
    """A scripted labeler's taste: the hidden preference plus its own noise.

    The noise of a judgement is drawn from the judge's seed and the texts judged, so asking
    one judge `rank` and then `scores` about the same texts gives one consistent verdict, a
    rerun gives the same verdicts, and judges with different seeds disagree independently."""

    def __init__(self, noise: float = REALISTIC_NOISE, seed: int = 0) -> None:
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise is a standard deviation, 0 or more; got {noise}")
        self.noise = noise
        self.seed = seed

    def judge(self, texts: Sequence[str]) -> Judgement:
        if not texts:
            raise ValueError("nothing to judge: give at least one text")
        draws = _standard_draws(self.seed, texts)
        utilities = tuple(
            true_utility(text) + self.noise * draw for text, draw in zip(texts, draws, strict=True)
        )
        levels = sorted(set(utilities), reverse=True)
        return Judgement(
            utilities=utilities,
            ranks=tuple(levels.index(utility) + 1 for utility in utilities),
            scores=tuple(likert(utility) for utility in utilities),
        )

    def rank(self, texts: Sequence[str]) -> list[int]:
        """Each text's rank, 1 = best; ties only where the noisy utilities are equal."""
        return list(self.judge(texts).ranks)

    def scores(self, texts: Sequence[str]) -> list[int]:
        """Each text's 1-7 score, consistent with `rank` on the same texts."""
        return list(self.judge(texts).scores)


def _standard_draws(seed: int, texts: Sequence[str]) -> list[float]:
    """One standard normal draw per text, fixed by the judge's seed and the texts; the
    judgement's noise is these times `noise`, so more noise moves the same way further."""
    # A digest, not hash(): str hashes change from one process to the next.
    material = json.dumps([seed, list(texts)], ensure_ascii=False).encode()
    rng = random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))
    return [rng.gauss(0.0, 1.0) for _ in texts]


# --- calibration ------------------------------------------------------------------------------


def contrast_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` pairs of answers to one prompt, one with POSITIVE words and one with NEGATIVE
    words, in random order: the pairs a half-and-half policy's samples give a judge to order."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        prompt = make_prompt(rng)
        pair = (describe(rng, prompt, POSITIVE), describe(rng, prompt, NEGATIVE))
        pairs.append(pair if rng.random() < 0.5 else (pair[1], pair[0]))
    return pairs


def agreement(noise: float, pairs: Sequence[tuple[str, str]], seed: int = 0) -> float:
    """The share of pairs two judges (seeds `seed` and `seed + 1`) order the same way, over
    the pairs both order (a tie orders nothing, as a tie gives no Pair)."""
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise is a standard deviation, 0 or more; got {noise}")
    return _agreement(noise, _prepare(pairs, seed))


def noise_for_agreement(
    target: float = 0.73,
    pairs: Sequence[tuple[str, str]] | None = None,
    *,
    seed: int = 0,
    iterations: int = 30,
) -> float:
    """The largest noise at which two judges still agree on `target` of `pairs` (default:
    5,000 contrast_pairs), found by bisection: agreement falls towards 0.5 as noise grows.
    REALISTIC_NOISE is the theory's answer for 0.73 on contrast pairs. Pairs of equally good
    answers (two liked ones) agree half the time at any noise above 0, so a queue full of
    them shows less agreement at the same noise: pass its own pairs to calibrate on them."""
    if not 0.5 < target < 1:
        raise ValueError(f"an agreement target lies between 0.5 and 1; got {target}")
    prepared = _prepare(contrast_pairs(5000, seed) if pairs is None else pairs, seed)
    if _agreement(0.0, prepared) < target:
        raise ValueError(f"these pairs agree less than {target} even without noise")
    low, high = 0.0, 1.0
    while _agreement(high, prepared) >= target:
        if high > 1e6:
            raise ValueError(f"these pairs never fall to {target} agreement")
        low, high = high, high * 2
    for _ in range(iterations):
        middle = (low + high) / 2
        if _agreement(middle, prepared) >= target:
            low = middle
        else:
            high = middle
    return low


# Per pair: its two true utilities, then each judge's two standard draws.
_Prepared = list[tuple[float, float, float, float, float, float]]


def _prepare(pairs: Sequence[tuple[str, str]], seed: int) -> _Prepared:
    # The draws do not depend on the noise, so a bisection draws them once.
    prepared = []
    for pair in pairs:
        first, second = _standard_draws(seed, pair), _standard_draws(seed + 1, pair)
        prepared.append((true_utility(pair[0]), true_utility(pair[1]), *first, *second))
    return prepared


def _agreement(noise: float, prepared: _Prepared) -> float:
    # The same arithmetic as Judge.judge, so this agrees with two Judges' rank() exactly.
    agreed = counted = 0
    for left, right, mine_left, mine_right, theirs_left, theirs_right in prepared:
        mine = (left + noise * mine_left, right + noise * mine_right)
        theirs = (left + noise * theirs_left, right + noise * theirs_right)
        if mine[0] == mine[1] or theirs[0] == theirs[1]:
            continue
        counted += 1
        agreed += (mine[0] > mine[1]) == (theirs[0] > theirs[1])
    if counted == 0:
        raise ValueError("no pair was ordered by both judges")
    return agreed / counted


# --- demonstrations ---------------------------------------------------------------------------


def demonstration(prompt_text: str, rng: random.Random, helpful_share: float = 0.5) -> str:
    """A labeler-written answer: helpful (two POSITIVE words) with probability
    `helpful_share`, else terse and unhelpful (two NEGATIVE words). Draws from `rng` as
    worker/training/synthetic.sft_rows does, so the same seed writes the same answers."""
    if not 0 <= helpful_share <= 1:
        raise ValueError(f"helpful_share is a probability; got {helpful_share}")
    words = POSITIVE if rng.random() < helpful_share else NEGATIVE
    return describe(rng, prompt_text, words)
