"""Pure agreement metrics on plain Python/numpy values (no database).

Definitions (DESIGN.md, "Agreement"); `Ratings` (ratings.py) holds one judgement per
(task, labeler):

- A labeler *orders* the response pair (a, b) of a task when it ranked both and gave them
  different ranks. A labeler who tied a and b expresses no preference on that pair and is left
  out of it (for pairwise agreement; for Kendall's tau-b the tie counts as a tie).
- Pairwise agreement: over every response pair ordered by two or more labelers, each pair of
  those labelers agrees when both order it the same way. Rate = agreeing labeler pairs / all
  labeler pairs, pooled over response pairs (micro average); n = the labeler pairs.
- Figures split by a label (queue, guideline version) count two labelers only when both
  judgements carry the same label: a version's agreement is between judgements made under it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Alpha and gold accuracy live in modules of their own; every figure is reachable from here.
from app.services.agreement.alpha import SCORES as SCORES
from app.services.agreement.alpha import ordinal_alpha as ordinal_alpha
from app.services.agreement.alpha import ordinal_alpha_by as ordinal_alpha_by
from app.services.agreement.arrays import dense_codes, dense_index, group_starts
from app.services.agreement.gold import GoldAccuracy as GoldAccuracy
from app.services.agreement.gold import gold_accuracy as gold_accuracy
from app.services.agreement.ratings import Ratings


def kendall_tau_b(ranks_a: Sequence[float], ranks_b: Sequence[float]) -> float | None:
    """Kendall's tau-b between two rankings of the same items (lower rank = better; equal
    ranks are ties). None when either ranking is all ties, where tau is undefined."""
    if len(ranks_a) != len(ranks_b):
        raise ValueError("both rankings must cover the same items")
    concordant = discordant = tied_a = tied_b = 0
    n = len(ranks_a)
    for i in range(n):
        for j in range(i + 1, n):
            da = ranks_a[i] - ranks_a[j]
            db = ranks_b[i] - ranks_b[j]
            if da == 0:
                tied_a += 1
            if db == 0:
                tied_b += 1
            if da * db > 0:
                concordant += 1
            elif da * db < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_a) * (pairs - tied_b))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def _share(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


@dataclass(frozen=True)
class PairwiseAgreement:
    agreeing: int = 0
    labeler_pairs: int = 0  # n: (labeler, labeler, response pair) comparisons
    response_pairs: int = 0  # response pairs ordered by two or more labelers

    @property
    def rate(self) -> float | None:
        return _share(self.agreeing, self.labeler_pairs)


@dataclass(frozen=True)
class LabelerAgreement:
    """One labeler against the others on the response pairs they ordered and somebody else
    ordered too: `agreeing` of `comparisons` (this labeler, other labeler) comparisons."""

    judgements: int = 0
    response_pairs: int = 0
    comparisons: int = 0
    agreeing: int = 0

    @property
    def rate(self) -> float | None:
        return _share(self.agreeing, self.comparisons)


@dataclass(frozen=True)
class MeanTau:
    mean: float | None = None
    labeler_pairs: int = 0  # (task, labeler, labeler) with a defined tau


def _strata(ratings: Ratings, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(stratum code of each judgement, label value of each code)."""
    if label is None:
        return np.zeros(ratings.judgement_count, dtype=np.int64), np.zeros(1, dtype=np.int64)
    return dense_codes(ratings.judgement_label(label))


def _ordered_and_agreeing(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Per vote pair: both judgements ordered the response pair; and the same way."""
    found = ratings.memo.get("ordered_and_agreeing")
    if found is None:
        pairs = ratings.vote_pairs
        ordered = (pairs.preference_u != 0) & (pairs.preference_v != 0)
        found = ordered, ordered & (pairs.preference_u == pairs.preference_v)
        ratings.memo["ordered_and_agreeing"] = found
    return found


def _pairwise_counts(
    ratings: Ratings, group: np.ndarray, keep: np.ndarray, values: np.ndarray
) -> dict[int, PairwiseAgreement]:
    """Pairwise agreement of the vote pairs in `keep`, split by `group` (codes into values)."""
    pairs = ratings.vote_pairs
    ordered, agree = _ordered_and_agreeing(ratings)
    ordered, agree = ordered & keep, agree & keep
    n = values.size
    agreeing = np.bincount(group[agree], minlength=n)
    compared = np.bincount(group[ordered], minlength=n)
    _, item_groups = dense_index(pairs.item[ordered] * n + group[ordered])
    response_pairs = np.bincount(item_groups % n, minlength=n)
    return {
        int(values[code]): PairwiseAgreement(
            int(agreeing[code]), int(compared[code]), int(response_pairs[code])
        )
        for code in range(n)
    }


def pairwise_agreement_by(ratings: Ratings, label: str | None) -> dict[int, PairwiseAgreement]:
    """Pairwise agreement per value of a judgement label (see the module docstring)."""
    stratum, values = _strata(ratings, label)
    pairs = ratings.vote_pairs
    same = stratum[pairs.judgement_u] == stratum[pairs.judgement_v]
    return _pairwise_counts(ratings, stratum[pairs.judgement_u], same, values)


def pairwise_agreement(ratings: Ratings) -> PairwiseAgreement:
    return pairwise_agreement_by(ratings, None)[0]


def pairwise_agreement_dated(ratings: Ratings, label: str) -> dict[int, PairwiseAgreement]:
    """Pairwise agreement per time bucket (an integer label such as a day number). Two
    judgements are compared in the bucket of the later one, when their agreement became
    known; a response pair counts in every bucket where one of its comparisons does."""
    bucket = ratings.judgement_label(label)
    if bucket.size == 0:
        return {}
    pairs = ratings.vote_pairs
    later = np.maximum(bucket[pairs.judgement_u], bucket[pairs.judgement_v])
    codes, values = dense_codes(later)
    keep = np.ones(len(pairs), dtype=bool)
    counts = _pairwise_counts(ratings, codes, keep, values)
    return {value: found for value, found in counts.items() if found.labeler_pairs}


def labeler_agreement(ratings: Ratings) -> dict[int, LabelerAgreement]:
    """Per labeler: over the response pairs it ordered that at least one other labeler also
    ordered, the share of (this labeler, other labeler) comparisons that agree. Every labeler
    with a judgement is listed, those without shared pairs with zero counts."""
    judgement_code, labelers = dense_codes(ratings.judgement_labeler)
    n = labelers.size
    judgements = np.bincount(judgement_code, minlength=n)
    pairs = ratings.vote_pairs
    ordered, agree = _ordered_and_agreeing(ratings)
    code_u = judgement_code[pairs.judgement_u]
    code_v = judgement_code[pairs.judgement_v]
    compared = np.bincount(code_u[ordered], minlength=n) + np.bincount(code_v[ordered], minlength=n)
    agreeing = np.bincount(code_u[agree], minlength=n) + np.bincount(code_v[agree], minlength=n)
    votes = ratings.votes
    expressed = votes.preference != 0
    per_item = np.bincount(votes.item[expressed], minlength=votes.item_count)
    shared = expressed & (per_item[votes.item] >= 2)
    response_pairs = np.bincount(judgement_code[votes.judgement[shared]], minlength=n)
    return {
        int(labelers[code]): LabelerAgreement(
            int(judgements[code]),
            int(response_pairs[code]),
            int(compared[code]),
            int(agreeing[code]),
        )
        for code in range(n)
    }


# --- rankings: Kendall's tau-b ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LabelerPairTaus:
    """Kendall's tau-b of every two judgements of the same task over the responses both
    ranked (NaN where either ranking is all ties there)."""

    judgement_u: np.ndarray
    judgement_v: np.ndarray
    tau: np.ndarray


def kendall_taus(ratings: Ratings) -> LabelerPairTaus:
    found = ratings.memo.get("kendall_taus")
    if found is None:
        found = ratings.memo["kendall_taus"] = _kendall_taus(ratings)
    return found


def _judgement_pairs(ratings: Ratings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index of each vote pair's (u, v), and u and v of each index), u < v.

    u and v judge one task, so (task, u's and v's places among its judgements) is a key from
    a small range: a linear pass rather than a sort of every vote pair."""
    pairs = ratings.vote_pairs
    count = ratings.judgement_count
    task = ratings.task_index[ratings.judgement_start]
    first = group_starts(task, ratings.tasks.size)
    width = int(np.diff(np.append(first, count)).max()) if count else 1
    if ratings.tasks.size * width * width >= 2**62:
        group, keys = dense_index(pairs.judgement_u * count + pairs.judgement_v)
        return group, keys // count, keys % count
    t = task[pairs.judgement_u]
    local_u, local_v = pairs.judgement_u - first[t], pairs.judgement_v - first[t]
    group, keys = dense_index((t * width + local_u) * width + local_v)
    start = first[keys // (width * width)]
    return group, start + (keys // width) % width, start + keys % width


def _kendall_taus(ratings: Ratings) -> LabelerPairTaus:
    pairs = ratings.vote_pairs
    group, judgement_u, judgement_v = _judgement_pairs(ratings)
    n = judgement_u.size
    product = pairs.preference_u.astype(np.int64) * pairs.preference_v
    concordant = np.bincount(group[product > 0], minlength=n)
    discordant = np.bincount(group[product < 0], minlength=n)
    ordered_u = np.bincount(group[pairs.preference_u != 0], minlength=n)
    ordered_v = np.bincount(group[pairs.preference_v != 0], minlength=n)
    denominator = np.sqrt(ordered_u.astype(np.float64) * ordered_v)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denominator > 0, (concordant - discordant) / denominator, np.nan)
    return LabelerPairTaus(judgement_u, judgement_v, tau)


def mean_kendall_tau_by(ratings: Ratings, label: str | None) -> dict[int, MeanTau]:
    """Mean tau-b over all labeler pairs of all tasks, per value of the label."""
    stratum, values = _strata(ratings, label)
    taus = kendall_taus(ratings)
    code = stratum[taus.judgement_u]
    keep = (code == stratum[taus.judgement_v]) & ~np.isnan(taus.tau)
    sums = np.bincount(code[keep], weights=taus.tau[keep], minlength=values.size)
    counts = np.bincount(code[keep], minlength=values.size)
    return {
        int(value): MeanTau(float(sums[c]) / int(counts[c]) if counts[c] else None, int(counts[c]))
        for c, value in enumerate(values)
    }


def mean_kendall_tau(ratings: Ratings) -> MeanTau:
    return mean_kendall_tau_by(ratings, None)[0]


def task_min_tau(ratings: Ratings) -> dict[int, float]:
    """{task id: the lowest tau-b between two of its labelers}, for tasks with a defined tau;
    adaptive overlap asks for one more labeler where this falls below the queue's threshold."""
    taus = kendall_taus(ratings)
    defined = ~np.isnan(taus.tau)
    task = ratings.judgement_task[taus.judgement_u[defined]]
    tau = taus.tau[defined]
    order = np.lexsort((tau, task))
    task, tau = task[order], tau[order]
    first = np.ones(task.size, dtype=bool)
    first[1:] = task[1:] != task[:-1]
    return {int(t): float(value) for t, value in zip(task[first], tau[first], strict=True)}
