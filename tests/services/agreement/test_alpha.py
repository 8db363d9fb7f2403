"""app.services.agreement.alpha: distinct value-count rows give the package's own alpha."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from pytest import approx

from app.services.agreement import alpha
from app.services.agreement.alpha import SCORES, ordinal_alpha_of, score_units
from tests.services.agreement.test_metrics import build


def random_counts(seed: int, units: int, coders: int) -> np.ndarray:
    """Value counts of units each scored by 0..coders coders, scores leaning on a hidden one."""
    rng = np.random.default_rng(seed)
    hidden = rng.integers(0, 7, units)
    scores = np.clip(hidden[:, None] + rng.integers(-1, 2, (units, coders)), 0, 6)
    present = rng.random((units, coders)) < 0.8
    counts = np.zeros((units, SCORES.size), dtype=np.int64)
    for coder in range(coders):
        np.add.at(
            counts, (np.arange(units)[present[:, coder]], scores[present[:, coder], coder]), 1
        )
    return counts


def public_alpha(counts: np.ndarray) -> float:
    return krippendorff.alpha(
        value_counts=counts, value_domain=SCORES, level_of_measurement="ordinal"
    )


@pytest.mark.parametrize(("seed", "units", "coders"), [(1, 50, 2), (2, 400, 3), (3, 2000, 5)])
def test_distinct_rows_with_their_counts_give_the_packages_alpha(
    seed: int, units: int, coders: int
) -> None:
    counts = random_counts(seed, units, coders)
    pairable = counts[counts.sum(axis=1) >= 2]
    rows, how_many = np.unique(pairable, axis=0, return_counts=True)

    assert alpha._STEPS is not None  # the installed release takes the small path
    assert rows.shape[0] < pairable.shape[0]
    assert ordinal_alpha_of(rows, how_many) == approx(public_alpha(pairable), rel=1e-12)


def test_without_the_packages_steps_alpha_goes_through_its_public_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = random_counts(4, 300, 3)
    rows, how_many = np.unique(counts, axis=0, return_counts=True)
    expected = public_alpha(counts[counts.sum(axis=1) >= 2])
    monkeypatch.setattr(alpha, "_STEPS", None)

    assert ordinal_alpha_of(rows, how_many) == approx(expected, rel=1e-12)


def test_score_units_are_the_distinct_rows_of_each_stratum() -> None:
    # The hand-made example (test_metrics.py), split by queue: chat has T1 (r1-r4 by ann, bob,
    # dan) and T2 (r5-r7 by ann, cat, dan); gold has T3 (r8, r9 by bob and cat; r10 by bob
    # only, so it is no unit).
    ratings = build()
    stratum = (ratings.judgement_label("queue") - 1).astype(np.int64)

    found = score_units(ratings, stratum, 2)

    def scores(*given: int) -> tuple[int, ...]:
        return tuple(int(np.sum(np.array(given) == value)) for value in SCORES)

    units = {
        (int(s), tuple(int(v) for v in row)): int(n)
        for row, n, s in zip(found.rows, found.units, found.stratum, strict=True)
    }
    expected: dict[tuple[int, tuple[int, ...]], int] = {}
    for key in [
        (0, scores(7, 6, 1)),  # r1: ann 7, bob 6, dan 1
        (0, scores(5, 4, 3)),  # r2
        (0, scores(3, 4, 5)),  # r3
        (0, scores(1, 2, 7)),  # r4
        (0, scores(6, 5, 2)),  # r5: ann 6, cat 5, dan 2
        (0, scores(5, 6, 4)),  # r6
        (0, scores(2, 2, 6)),  # r7
        (1, scores(7, 6)),  # r8: bob 7, cat 6
        (1, scores(4, 3)),  # r9
    ]:
        expected[key] = expected.get(key, 0) + 1
    assert units == expected


def test_alpha_of_no_pairable_unit_or_no_variation_is_none() -> None:
    assert ordinal_alpha_of(np.zeros((0, 7), dtype=np.int64), np.zeros(0, dtype=np.int64)) is None
    alone = np.array([[1, 0, 0, 0, 0, 0, 0]])
    assert ordinal_alpha_of(alone, np.array([5])) is None
    same = np.array([[0, 0, 3, 0, 0, 0, 0]])
    assert ordinal_alpha_of(same, np.array([4])) is None
