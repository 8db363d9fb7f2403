"""Judgements as numpy arrays, and the response-pair votes every agreement figure is built from.

A *judgement* is one labeler's comparison of one task: rows (task, labeler, response, rank,
score), one per response. A *vote* is what one judgement says about one response pair (a, b)
of its task, a < b by response id: +1 when a is ranked better, -1 when b is, 0 when tied. A
*vote pair* is two judgements' votes on the same response pair: the unit of labeler agreement.

Everything is done with whole-array operations so a million comparisons cost seconds: rows are
sorted once, groups are found from boundaries or a dense key, and the pairs inside each group
are made with one broadcast per group size (there are only a few sizes: K responses, overlap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

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


def _runs(change: np.ndarray) -> tuple[IntArray, IntArray, IntArray]:
    """For sorted rows where `change[i]` says row i starts a new run: (run of each row, starts,
    sizes)."""
    run = np.cumsum(change, dtype=np.int64) - 1
    starts = np.flatnonzero(change).astype(np.int64)
    sizes = np.diff(np.append(starts, change.size)).astype(np.int64)
    return run, starts, sizes


@dataclass(frozen=True, eq=False)
class Ratings:
    """One row per (task, labeler, response) judged, sorted by task, labeler, response.

    `rank`: 1 is best, equal ranks tie, NaN = not ranked. `score`: 1..7 or NaN. `labels`: extra
    per-row integer columns that are constant within a judgement (queue, guideline version,
    day), used to split figures. Build with `Ratings.build`, which sorts and checks."""

    task: IntArray
    labeler: IntArray
    response: IntArray
    rank: FloatArray
    score: FloatArray
    labels: dict[str, IntArray] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        task: object,
        labeler: object,
        response: object,
        rank: object,
        score: object,
        **labels: object,
    ) -> Ratings:
        """Columns as any array-likes (None becomes NaN in rank and score). One judgement per
        (task, labeler): a repeated (task, labeler, response) is an error."""
        task_a = np.asarray(task, dtype=np.int64).ravel()
        labeler_a = np.asarray(labeler, dtype=np.int64).ravel()
        response_a = np.asarray(response, dtype=np.int64).ravel()
        rank_a = np.asarray(rank, dtype=np.float64).ravel()
        score_a = np.asarray(score, dtype=np.float64).ravel()
        label_a = {name: np.asarray(v, dtype=np.int64).ravel() for name, v in labels.items()}
        n = task_a.size
        if any(a.size != n for a in (labeler_a, response_a, rank_a, score_a, *label_a.values())):
            raise ValueError("every column needs one value per row")
        order = np.lexsort((response_a, labeler_a, task_a))
        built = cls(
            task_a[order],
            labeler_a[order],
            response_a[order],
            rank_a[order],
            score_a[order],
            {name: values[order] for name, values in label_a.items()},
        )
        if n > 1:
            same = (
                (np.diff(built.task) == 0)
                & (np.diff(built.labeler) == 0)
                & (np.diff(built.response) == 0)
            )
            if same.any():
                raise ValueError("a labeler judged the same response of a task twice")
        return built

    @classmethod
    def empty(cls) -> Ratings:
        return cls.build([], [], [], [], [])

    def __len__(self) -> int:
        return int(self.task.size)

    def select(self, rows: np.ndarray) -> Ratings:
        """The rows where the boolean mask is true (order kept, so still sorted)."""
        return Ratings(
            self.task[rows],
            self.labeler[rows],
            self.response[rows],
            self.rank[rows],
            self.score[rows],
            {name: values[rows] for name, values in self.labels.items()},
        )

    # --- judgements: one run of rows per (task, labeler) --------------------------------------

    @cached_property
    def _judgement_runs(self) -> tuple[IntArray, IntArray, IntArray]:
        change = np.ones(len(self), dtype=bool)
        if len(self) > 1:
            change[1:] = (np.diff(self.task) != 0) | (np.diff(self.labeler) != 0)
        return _runs(change)

    @property
    def judgement(self) -> IntArray:
        """Judgement index of each row."""
        return self._judgement_runs[0]

    @property
    def judgement_start(self) -> IntArray:
        return self._judgement_runs[1]

    @property
    def judgement_count(self) -> int:
        return int(self.judgement_start.size)

    @property
    def judgement_task(self) -> IntArray:
        return self.task[self.judgement_start]

    @property
    def judgement_labeler(self) -> IntArray:
        return self.labeler[self.judgement_start]

    def judgement_label(self, name: str) -> IntArray:
        return self.labels[name][self.judgement_start]

    # --- tasks and their responses ("nodes") --------------------------------------------------

    @cached_property
    def _task_index(self) -> tuple[IntArray, IntArray]:
        change = np.ones(len(self), dtype=bool)
        if len(self) > 1:
            change[1:] = np.diff(self.task) != 0
        run, starts, _ = _runs(change)
        return run, self.task[starts]

    @property
    def task_index(self) -> IntArray:
        """Dense task index of each row (0 .. number of tasks - 1, in task id order)."""
        return self._task_index[0]

    @property
    def tasks(self) -> IntArray:
        """Task ids, sorted; tasks[task_index] == task."""
        return self._task_index[1]

    @cached_property
    def _nodes(self) -> tuple[IntArray, IntArray, IntArray, IntArray, int]:
        """Every (task, response) judged at least once, sorted: node of each row, node task
        index, node response id, node's position among its task's responses, widest task."""
        if len(self) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty, 0
        response_ids, responses = np.unique(self.response, return_inverse=True)
        width = int(response_ids.size)
        node_of_row, node_keys = dense_index(self.task_index * width + responses.ravel())
        node_task = node_keys // width
        node_response = response_ids[node_keys % width]
        first = np.searchsorted(node_task, node_task, side="left")
        local = np.arange(node_task.size, dtype=np.int64) - first
        return node_of_row, node_task, node_response, local, int(local.max()) + 1

    @property
    def node(self) -> IntArray:
        return self._nodes[0]

    @property
    def node_task(self) -> IntArray:
        """Task index of each node."""
        return self._nodes[1]

    @property
    def node_response(self) -> IntArray:
        return self._nodes[2]

    @property
    def node_local(self) -> IntArray:
        """Position of the node's response among its task's responses (0 = lowest id)."""
        return self._nodes[3]

    @property
    def max_responses(self) -> int:
        return self._nodes[4]

    def item_key(self, task_index: IntArray, local_a: IntArray, local_b: IntArray) -> IntArray:
        """A key for the response pair (a, b), local_a < local_b, of a task: see `votes`."""
        width = self.max_responses
        return (task_index * width + local_a) * width + local_b

    # --- votes: what each judgement says about each response pair -----------------------------

    @cached_property
    def votes(self) -> Votes:
        """One vote per (judgement, response pair both ranked by it)."""
        starts = self.judgement_start
        sizes = np.diff(np.append(starts, len(self)))
        first, second = pairs_within_groups(starts, sizes)
        ranked = ~np.isnan(self.rank[first]) & ~np.isnan(self.rank[second])
        first, second = first[ranked], second[ranked]
        # Rows are sorted by response inside a judgement, so `first` is the lower response id.
        preference = np.sign(self.rank[second] - self.rank[first]).astype(np.int8)
        local = self.node_local[self.node]  # per row
        keys = self.item_key(self.task_index[first], local[first], local[second])
        item, item_keys = dense_index(keys)
        item_first = np.zeros(item_keys.size, dtype=np.int64)
        item_first[item] = first
        item_second = np.zeros(item_keys.size, dtype=np.int64)
        item_second[item] = second
        return Votes(
            item=item,
            judgement=self.judgement[first],
            preference=preference,
            item_keys=item_keys,
            item_task=self.task_index[item_first],
            item_a=self.response[item_first],
            item_b=self.response[item_second],
        )

    @cached_property
    def vote_pairs(self) -> VotePairs:
        """Every two votes on the same response pair (ties included), judgement u < v."""
        votes = self.votes
        order = np.argsort(votes.item, kind="stable")
        counts = np.bincount(votes.item, minlength=votes.item_count)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        first, second = pairs_within_groups(starts, counts.astype(np.int64))
        u, v = order[first], order[second]
        swap = votes.judgement[u] > votes.judgement[v]
        u, v = np.where(swap, v, u), np.where(swap, u, v)
        return VotePairs(
            item=votes.item[u],
            judgement_u=votes.judgement[u],
            judgement_v=votes.judgement[v],
            preference_u=votes.preference[u],
            preference_v=votes.preference[v],
        )


@dataclass(frozen=True, eq=False)
class Votes:
    item: IntArray  # the response pair voted on (index into item_*)
    judgement: IntArray
    preference: np.ndarray  # int8: +1 item_a better, -1 item_b better, 0 tie
    item_keys: IntArray
    item_task: IntArray  # task index of each item
    item_a: IntArray  # response ids, item_a < item_b
    item_b: IntArray

    @property
    def item_count(self) -> int:
        return int(self.item_keys.size)


@dataclass(frozen=True, eq=False)
class VotePairs:
    item: IntArray
    judgement_u: IntArray
    judgement_v: IntArray
    preference_u: np.ndarray
    preference_v: np.ndarray

    def __len__(self) -> int:
        return int(self.item.size)
