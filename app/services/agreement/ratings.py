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
from typing import Any

import numpy as np

from app.services.agreement.arrays import FloatArray, IntArray, ascending, dense_codes, runs

# Where they were first defined; callers may keep importing them from here.
from app.services.agreement.arrays import dense_index as dense_index
from app.services.agreement.arrays import pairs_within_groups as pairs_within_groups


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
        if not ascending(task_a, labeler_a, response_a):
            order = np.lexsort((response_a, labeler_a, task_a))
            task_a, labeler_a, response_a = task_a[order], labeler_a[order], response_a[order]
            rank_a, score_a = rank_a[order], score_a[order]
            label_a = {name: values[order] for name, values in label_a.items()}
        if n > 1:
            same = (np.diff(task_a) == 0) & (np.diff(labeler_a) == 0) & (np.diff(response_a) == 0)
            if same.any():
                raise ValueError("a labeler judged the same response of a task twice")
        return cls(task_a, labeler_a, response_a, rank_a, score_a, label_a)

    @cached_property
    def memo(self) -> dict[str, Any]:
        """Figures derived from these ratings, kept for the next one that needs them (the
        report asks for several splits of the same figures)."""
        return {}

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
        return runs(change)

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
    def _task_index(self) -> tuple[IntArray, IntArray, IntArray]:
        change = np.ones(len(self), dtype=bool)
        if len(self) > 1:
            change[1:] = np.diff(self.task) != 0
        run, starts, _ = runs(change)
        return run, self.task[starts], starts

    @property
    def _task_starts(self) -> IntArray:
        """First row of each task."""
        return self._task_index[2]

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
        # (task, response) as one number: the task, then the response id less the task's
        # lowest. A task's responses are usually made together, so their ids are close and
        # the numbers few enough to be indexed without a sort.
        lowest = np.minimum.reduceat(self.response, self._task_starts)
        offset = self.response - lowest[self.task_index]
        span = int(offset.max()) + 1
        if self.tasks.size * span < 2**62:
            node_of_row, node_keys = dense_index(self.task_index * span + offset)
            node_task = node_keys // span
            node_response = node_keys % span + lowest[node_task]
        else:
            responses, response_ids = dense_codes(self.response)
            width = int(response_ids.size)
            node_of_row, node_keys = dense_index(self.task_index * width + responses)
            node_task, node_response = node_keys // width, response_ids[node_keys % width]
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
        return Votes(
            item=item,
            judgement=self.judgement[first],
            preference=preference,
            item_keys=item_keys,
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
    item: IntArray  # the response pair voted on (index into item_keys)
    judgement: IntArray
    # int8: +1 when the response with the lower id is better, -1 when the other is, 0 tie
    preference: np.ndarray
    item_keys: IntArray  # Ratings.item_key of each item, ascending

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
