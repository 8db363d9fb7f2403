"""Whole-array building blocks: groups from sorted runs or dense keys, pairs inside groups.

A million comparisons become a few million rows; a Python loop over them costs seconds, so
the agreement figures are made of these: sort once, find groups from boundaries or a dense
key, and make the pairs inside each group with one broadcast per group size (there are only
a few sizes: K responses, the overlap).
"""

from __future__ import annotations

import numpy as np

IntArray = np.ndarray
FloatArray = np.ndarray


def pairs_within_groups(starts: IntArray, sizes: IntArray) -> tuple[IntArray, IntArray]:
    """(i, j) with i < j for every two positions inside each run of consecutive positions.

    `starts[g]` and `sizes[g]` describe run g. One broadcast per distinct size."""
    firsts: list[IntArray] = []
    seconds: list[IntArray] = []
    for size in np.unique(sizes):
        if size < 2:
            continue
        chosen = starts[sizes == size]
        i, j = np.triu_indices(int(size), 1)
        firsts.append((chosen[:, None] + i).ravel())
        seconds.append((chosen[:, None] + j).ravel())
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    return np.concatenate(firsts), np.concatenate(seconds)


def dense_index(keys: IntArray) -> tuple[IntArray, IntArray]:
    """(index of each key among the sorted distinct keys, the sorted distinct keys).

    Non-negative integer keys from a small range take a linear path; others np.unique."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = int(keys.max()) + 1
    if int(keys.min()) >= 0 and top <= 4 * keys.size + 1_000_000:
        present = np.zeros(top, dtype=bool)
        present[keys] = True
        position = np.cumsum(present, dtype=np.int64) - 1
        return position[keys], np.flatnonzero(present).astype(np.int64)
    uniques, inverse = np.unique(keys, return_inverse=True)
    return inverse.astype(np.int64).ravel(), uniques.astype(np.int64)


def dense_codes(values: IntArray) -> tuple[IntArray, IntArray]:
    """dense_index for any integers (labels may be negative): (code of each, distinct values)."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    low = int(values.min())
    codes, distinct = dense_index(values.astype(np.int64) - low)
    return codes, distinct + low


def ascending(*keys: IntArray) -> bool:
    """Whether rows are sorted by the keys, first key first (ties broken by the next)."""
    if keys[0].size < 2:
        return True
    undecided = np.ones(keys[0].size - 1, dtype=bool)
    for key in keys:
        step = np.diff(key)
        if (undecided & (step < 0)).any():
            return False
        undecided &= step == 0
    return True


def runs(change: np.ndarray) -> tuple[IntArray, IntArray, IntArray]:
    """For sorted rows where `change[i]` says row i starts a new run: (run of each row, starts,
    sizes)."""
    run = np.cumsum(change, dtype=np.int64) - 1
    starts = np.flatnonzero(change).astype(np.int64)
    sizes = np.diff(np.append(starts, change.size)).astype(np.int64)
    return run, starts, sizes


def group_starts(groups: IntArray, count: int) -> IntArray:
    """For values sorted ascending in 0..count-1: where each value's run starts (its end when
    the value is absent)."""
    return np.searchsorted(groups, np.arange(count), side="left").astype(np.int64)
