"""app.services.agreement.loading on the hand-made world: integer columns straight to numpy."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import BigInteger, Integer, cast, literal, select, union_all
from sqlalchemy.orm import Session

from app.services.agreement import loading
from app.services.agreement.loading import fetch_integers, load_ratings
from app.services.agreement.ratings import Ratings
from tests.services.agreement.world import World, build_world


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def columns(ratings: Ratings) -> dict[str, list[float]]:
    found = {
        "task": ratings.task.tolist(),
        "labeler": ratings.labeler.tolist(),
        "response": ratings.response.tolist(),
        "rank": np.nan_to_num(ratings.rank, nan=-1).tolist(),
        "score": np.nan_to_num(ratings.score, nan=-1).tolist(),
    }
    return found | {name: values.tolist() for name, values in ratings.labels.items()}


def test_integer_columns_arrive_exactly(db: Session) -> None:
    values = [(-1, 0, 2**40 + 3), (7, -(2**62), 2**62)]
    query = union_all(*(select(*(literal(v, BigInteger) for v in row)) for row in values))

    found = fetch_integers(db, select(query.subquery()))

    assert found.dtype == np.int64
    assert sorted(map(tuple, found.tolist())) == sorted(values)


def test_a_null_is_refused(db: Session) -> None:
    query = select(literal(1, BigInteger), cast(literal(None, Integer), BigInteger))

    with pytest.raises(ValueError, match="a column holds a NULL"):
        fetch_integers(db, query)


def test_reading_a_range_of_ids_or_joining_gives_the_same_ratings(
    db: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranged = load_ratings(db, project_ids=[world.project.id], bucket="day")
    monkeypatch.setattr(loading, "RANGE_WASTE", -1.0)  # no range is dense enough: join
    joined = load_ratings(db, project_ids=[world.project.id], bucket="day")

    assert columns(joined) == columns(ranged)
    # 8 counted judgements of 4, 3 and 3 responses (see world.py).
    assert len(ranged) == 3 * 4 + 3 * 3 + 2 * 3
    assert sorted(set(ranged.task.tolist())) == [world.t1.id, world.t2.id, world.t3.id]


def test_some_tasks_only(db: Session, world: World) -> None:
    whole = load_ratings(db, project_ids=[world.project.id])

    found = load_ratings(db, project_ids=[world.project.id], task_ids=[world.t2.id])

    assert columns(found) == columns(whole.select(whole.task == world.t2.id))
    assert load_ratings(db, project_ids=[world.project.id], task_ids=[]).task.size == 0
