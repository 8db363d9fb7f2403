"""app.services.agreement.ratings: rows, judgements, nodes and votes of small examples."""

from __future__ import annotations

import numpy as np
import pytest

from app.services.agreement import metrics
from app.services.agreement.metrics import PairwiseAgreement
from app.services.agreement.ratings import Ratings


def two_tasks(r: dict[int, int]) -> Ratings:
    """Task 1 shows responses r[100], r[5] and r[7]; task 2 shows r[5] again and r[900].
    Labelers 1 and 2 judge both; they agree on task 1 except on (5, 7), and on task 2."""
    rows = [
        (1, 1, r[100], 1),
        (1, 1, r[5], 2),
        (1, 1, r[7], 3),
        (1, 2, r[100], 1),
        (1, 2, r[7], 2),
        (1, 2, r[5], 3),
        (2, 1, r[900], 1),
        (2, 1, r[5], 2),
        (2, 2, r[900], 1),
        (2, 2, r[5], 2),
    ]
    task, labeler, response, rank = zip(*rows[::-1], strict=True)
    return Ratings.build(task, labeler, response, rank, [None] * len(rows))


IDS = {k: k for k in (5, 7, 100, 900)}


@pytest.mark.parametrize(
    "r",
    [IDS, {k: k + 10**15 for k in IDS}, IDS | {100: 2**62 + 100}],
    ids=["close", "large", "too far apart for one number"],
)
def test_nodes_of_responses_far_apart_or_shown_in_two_tasks(r: dict[int, int]) -> None:
    ratings = two_tasks(r)

    nodes = list(
        zip(
            ratings.tasks[ratings.node_task].tolist(),
            ratings.node_response.tolist(),
            ratings.node_local.tolist(),
            strict=True,
        )
    )
    assert nodes == [(1, r[5], 0), (1, r[7], 1), (1, r[100], 2), (2, r[5], 0), (2, r[900], 1)]
    assert ratings.max_responses == 3
    assert (ratings.node_response[ratings.node] == ratings.response).all()
    # Task 1: (5,7) split, (5,100) and (7,100) agree; task 2: (5,900) agrees.
    assert metrics.pairwise_agreement(ratings) == PairwiseAgreement(3, 4, 4)


def test_rows_given_sorted_are_kept_and_others_sorted() -> None:
    ratings = Ratings.build([1, 1, 2], [3, 3, 1], [5, 6, 7], [1, 2, 1], [4, None, 2])
    shuffled = Ratings.build([2, 1, 1], [1, 3, 3], [7, 6, 5], [1, 2, 1], [2, None, 4])

    for found in (ratings, shuffled):
        assert found.task.tolist() == [1, 1, 2]
        assert found.response.tolist() == [5, 6, 7]
        assert np.nan_to_num(found.score, nan=0).tolist() == [4, 0, 2]
    with pytest.raises(ValueError, match="judged the same response of a task twice"):
        Ratings.build([1, 1], [3, 3], [5, 5], [1, 2], [None, None])
