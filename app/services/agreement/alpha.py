"""Krippendorff's alpha (ordinal) on the 1-7 scores, with the `krippendorff` package.

Units are (task, response) pairs, coders labelers. The package builds a units x values x
values array (three of them, float64, while it sums): 1.6 GB at a million comparisons. Alpha
depends on the units only through their coincidence matrix, a sum over units of a term that
depends on the unit's value counts alone, and with overlap 3 and 7 scores there are only a
few hundred distinct value-count rows. So each distinct row goes through the package's
coincidence step once, weighted by how many units have it, and the package finishes alpha
from the summed matrix: the same figure for a few kilobytes.

Those steps are the package's private functions. They are checked against its public
`alpha()` on import; should a release change them, every alpha goes through `alpha()` with
the rows repeated (the same figure, at the old memory cost).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np

from app.services.agreement.arrays import dense_codes, dense_index
from app.services.agreement.ratings import Ratings

SCORES = np.arange(1, 8)


@dataclass(frozen=True, eq=False)
class ScoreUnits:
    """Distinct value-count rows of the units scored twice or more, per stratum.

    rows[i]: how many labelers gave each score 1..7; units[i]: how many units have that row
    in stratum stratum[i] (a code into the label's values)."""

    rows: np.ndarray
    units: np.ndarray
    stratum: np.ndarray

    def of(self, code: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.stratum == code
        return self.rows[chosen], self.units[chosen]


def score_units(ratings: Ratings, stratum: np.ndarray, strata: int) -> ScoreUnits:
    """A unit is a (task, response) scored by two or more labelers whose judgements are in
    the same stratum (`stratum`: a code per judgement); one labeler's score is a unit with
    nothing to agree with and adds nothing to alpha."""
    scored = np.isin(ratings.score, SCORES)  # NaN (no score) and anything off the scale out
    row_stratum = stratum[ratings.judgement[scored]]
    unit, unit_keys = dense_index(ratings.node[scored] * strata + row_stratum)
    value = ratings.score[scored].astype(np.int64) - 1
    counts = np.bincount(unit * SCORES.size + value, minlength=unit_keys.size * SCORES.size)
    counts = counts.reshape(unit_keys.size, SCORES.size)
    pairable = counts.sum(axis=1) >= 2
    counts, unit_stratum = counts[pairable], (unit_keys % strata)[pairable]
    if counts.shape[0] == 0:
        return ScoreUnits(counts, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    base = int(counts.max()) + 1
    if base**SCORES.size * strata < 2**62:  # a row and its stratum as one number
        powers = base ** np.arange(SCORES.size, dtype=np.int64)
        pattern, keys = dense_index((counts @ powers) * strata + unit_stratum)
        row_keys = keys // strata
        rows = (row_keys[:, None] // powers[None, :]) % base
        return ScoreUnits(rows, np.bincount(pattern, minlength=keys.size), keys % strata)
    table = np.column_stack([unit_stratum, counts])
    distinct, units = np.unique(table, axis=0, return_counts=True)
    return ScoreUnits(distinct[:, 1:], units, distinct[:, 0])


def ordinal_alpha_of(rows: np.ndarray, units: np.ndarray) -> float | None:
    """Ordinal alpha of units given as distinct value-count rows (scores 1..7) and how many
    units have each; None with no unit scored twice or no variation at all (alpha is 0/0)."""
    keep = (units > 0) & (rows.sum(axis=1) >= 2)
    if not keep.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (
            _alpha_in_pieces(_STEPS, rows[keep], units[keep])
            if _STEPS is not None
            else _package_alpha(np.repeat(rows[keep], units[keep], axis=0))
        )
    return None if math.isnan(value) else value


def _package_alpha(counts: np.ndarray) -> float:
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=SCORES, level_of_measurement="ordinal")
    )


Steps = tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any], Callable[..., Any]]


def _alpha_in_pieces(steps: Steps, rows: np.ndarray, units: np.ndarray) -> float:
    """What krippendorff.alpha computes, with the coincidence matrix summed row by row."""
    coincidences, random_coincidences, distances, metric = steps
    observed = sum(
        (
            count * coincidences(row[None, :])
            for row, count in zip(rows, units.tolist(), strict=True)
        ),
        start=np.zeros((SCORES.size, SCORES.size)),
    )
    n_v = observed.sum(axis=0)
    expected = random_coincidences(n_v)
    distance = distances(SCORES, metric, n_v)
    return float(1 - (observed * distance).sum() / (expected * distance).sum())


def _package_steps() -> Steps | None:
    """The package's own steps of alpha, if this release has them as we use them."""
    package = getattr(krippendorff, "krippendorff", None)
    try:
        steps: Steps = (
            package._coincidences,  # type: ignore[union-attr]
            package._random_coincidences,  # type: ignore[union-attr]
            package._distances,  # type: ignore[union-attr]
            package._distance_metric("ordinal"),  # type: ignore[union-attr]
        )
        rows = np.array([[2, 0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 1, 0, 1], [0, 0, 0, 3, 0, 1, 0]])
        units = np.array([3, 1, 2])
        found = _alpha_in_pieces(steps, rows, units)
        expected = _package_alpha(np.repeat(rows, units, axis=0))
    except (AttributeError, TypeError, ValueError):
        return None
    return steps if math.isclose(found, expected, rel_tol=1e-12) else None


_STEPS = _package_steps()


def ordinal_alpha_by(ratings: Ratings, label: str | None) -> dict[int, float | None]:
    """Krippendorff's alpha (ordinal) on the 1-7 scores: units (task, response), coders
    labelers, per value of the label (two scores meet only inside one stratum)."""
    if label is None:
        stratum, values = np.zeros(ratings.judgement_count, dtype=np.int64), np.zeros(1, int)
    else:
        stratum, values = dense_codes(ratings.judgement_label(label))
    found = score_units(ratings, stratum, max(values.size, 1))
    return {
        int(value): ordinal_alpha_of(*found.of(code)) for code, value in enumerate(values.tolist())
    }


def ordinal_alpha(ratings: Ratings) -> float | None:
    return ordinal_alpha_by(ratings, None)[0]
