"""app.services.agreement.service on the hand-made world (tests/services/agreement/world.py)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import krippendorff
import numpy as np
import pytest
from pytest import approx
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Base, QueueKind
from app.schemas.agreement import AgreementPoint
from app.services.agreement import service
from tests.services.agreement.test_metrics import ANN, BOB, CAT, DAN, MATRIX, NAN, direct_alpha
from tests.services.agreement.world import (
    World,
    build_world,
    day,
    judge,
    make_project,
    make_queue,
    make_task,
)

SQRT6 = math.sqrt(6)
V2_MATRIX = np.array(
    [
        MATRIX[ANN][4:7] + [NAN] * 3,
        MATRIX[DAN][4:7] + [NAN] * 3,
        [NAN] * 3 + MATRIX[BOB][7:10],
        [NAN] * 3 + MATRIX[CAT][7:10],
    ]
)


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def figures(
    comparisons: int,
    labelers: int,
    agreeing: int,
    pairs: int,
    response_pairs: int,
    alpha: float | None,
    tau: float | None,
    tau_pairs: int,
) -> dict[str, Any]:
    return {
        "comparisons": comparisons,
        "labelers": labelers,
        "pairwise_agreement": approx(agreeing / pairs) if pairs else None,
        "agreeing_pairs": agreeing,
        "labeler_pairs": pairs,
        "response_pairs": response_pairs,
        "krippendorff_alpha": None if alpha is None else approx(alpha),
        "mean_kendall_tau": None if tau is None else approx(tau),
        "tau_pairs": tau_pairs,
    }


def labeler(
    world_user: Any,
    comparisons: int,
    response_pairs: int,
    pairs: int,
    agreeing: int,
    reliability: float,
    gold: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    correct, total = gold
    return {
        "labeler_id": world_user.id,
        "username": world_user.username,
        "comparisons": comparisons,
        "response_pairs": response_pairs,
        "labeler_pairs": pairs,
        "agreeing_pairs": agreeing,
        "pairwise_agreement": approx(agreeing / pairs) if pairs else None,
        "reliability": approx(reliability),
        "gold_pairs": total,
        "gold_correct": correct,
        "gold_accuracy": approx(correct / total) if total else None,
    }


# --- the report -------------------------------------------------------------------------------


def test_report_of_the_whole_project(db: Session, world: World) -> None:
    report = service.agreement_report(db, world.project.id).model_dump()

    assert report == {
        "project_id": world.project.id,
        "queue_id": None,
        "guideline_version_id": None,
        # 8 counted comparisons by 4 labelers; 10 of 27 (world.py); tau: 7 labeler pairs
        # summing to -2 + 2/sqrt(6) (test_metrics.TAUS).
        "overall": figures(8, 4, 10, 27, 11, direct_alpha(slice(None)), (-2 + 2 / SQRT6) / 7, 7),
        "queues": [
            {
                "queue_id": world.chat.id,
                "queue_name": "chat",
                **figures(6, 4, 8, 25, 9, direct_alpha(slice(0, 7)), -2 / 6, 6),
            },
            {
                "queue_id": world.gold.id,
                "queue_name": "gold",
                **figures(2, 2, 2, 2, 2, direct_alpha(slice(7, 10)), 2 / SQRT6, 1),
            },
        ],
        "guideline_versions": [
            {
                "guideline_version_id": world.v1.id,
                "version": 1,
                **figures(4, 4, 5, 16, 6, direct_alpha(slice(0, 4), (ANN, BOB, DAN)), -1 / 3, 3),
            },
            {
                "guideline_version_id": world.v2.id,
                "version": 2,
                **figures(
                    4,
                    4,
                    2,
                    5,
                    5,
                    krippendorff.alpha(reliability_data=V2_MATRIX, level_of_measurement="ordinal"),
                    (-1 + 2 / SQRT6) / 2,
                    2,
                ),
            },
        ],
        # Reliability (7 + 10 * 10/27) / (17 + 10) = 289/729 and so on (test_consensus.py);
        # gold r8 > r9 > r10: bob 3 of 3, cat ties r9 = r10: 2 of 3.
        "labelers": [
            labeler(world.ann, 2, 9, 17, 7, 289 / 729),
            labeler(world.bob, 2, 7, 12, 7, 289 / 594, gold=(3, 3)),
            labeler(world.cat, 2, 5, 8, 5, 235 / 486, gold=(2, 3)),
            labeler(world.dan, 2, 9, 17, 1, 127 / 729),
        ],
    }


def test_report_of_one_queue(db: Session, world: World) -> None:
    report = service.agreement_report(db, world.project.id, queue_id=world.gold.id).model_dump()

    # T3 only: bob and cat agree on (8,9) and (8,10); overall reliability 1 -> (2 + 10) / 12.
    gold_only = figures(2, 2, 2, 2, 2, direct_alpha(slice(7, 10)), 2 / SQRT6, 1)
    assert report["overall"] == gold_only
    assert report["queues"] == [{"queue_id": world.gold.id, "queue_name": "gold", **gold_only}]
    assert report["guideline_versions"] == [
        {"guideline_version_id": world.v2.id, "version": 2, **gold_only}
    ]
    assert report["labelers"] == [
        labeler(world.bob, 1, 2, 2, 2, 1.0, gold=(3, 3)),
        labeler(world.cat, 1, 2, 2, 2, 1.0, gold=(2, 3)),
    ]


def test_report_of_one_guideline_version(db: Session, world: World) -> None:
    report = service.agreement_report(
        db, world.project.id, guideline_version_id=world.v2.id
    ).model_dump()

    # v2: T2 ann vs dan 0 of 3, T3 bob vs cat 2 of 2 -> 2 of 5; overall rate 2/5, so
    # reliability ann (0 + 4) / (3 + 10) = 4/13, bob (2 + 4) / (2 + 10) = 1/2.
    alpha = krippendorff.alpha(reliability_data=V2_MATRIX, level_of_measurement="ordinal")
    assert report["overall"] == figures(4, 4, 2, 5, 5, alpha, (-1 + 2 / SQRT6) / 2, 2)
    queues = [(q["queue_name"], q["agreeing_pairs"], q["labeler_pairs"]) for q in report["queues"]]
    assert queues == [("chat", 0, 3), ("gold", 2, 2)]
    assert [row["version"] for row in report["guideline_versions"]] == [2]
    assert report["labelers"] == [
        labeler(world.ann, 1, 3, 3, 0, 4 / 13),
        labeler(world.bob, 1, 2, 2, 2, 1 / 2, gold=(3, 3)),
        labeler(world.cat, 1, 2, 2, 2, 1 / 2, gold=(2, 3)),
        labeler(world.dan, 1, 3, 3, 0, 4 / 13),
    ]


def test_report_of_one_queue_and_one_version(db: Session, world: World) -> None:
    report = service.agreement_report(
        db, world.project.id, queue_id=world.chat.id, guideline_version_id=world.v1.id
    )

    # T1 (ann, bob, dan) and cat alone on T2.
    assert (report.overall.agreeing_pairs, report.overall.labeler_pairs) == (5, 16)
    assert report.overall.comparisons == 4
    assert [row.username for row in report.labelers] == ["ann", "bob", "cat", "dan"]


def test_only_a_labelers_latest_comparison_of_a_task_counts_after_the_filters(
    db: Session, world: World
) -> None:
    # ann judges T1 again under v2, now exactly like dan (r4 > r3 > r2 > r1).
    r = world.r
    like_dan = {r[1]: 4, r[2]: 3, r[3]: 2, r[4]: 1}
    judge(db, world.t1, world.ann, like_dan, {}, version=world.v2, at=day(5))
    db.commit()

    everything = service.agreement_report(db, world.project.id)
    v1 = service.agreement_report(db, world.project.id, guideline_version_id=world.v1.id)

    # T1 now: (1,2) (1,3) (1,4) (2,4) (3,4) ann and dan agree, bob not: 1 of 3 each;
    # (2,3) ann and dan: 1 of 1 -> 6 of 16; with T2 3/9 and T3 2/2: 11 of 27.
    assert (everything.overall.agreeing_pairs, everything.overall.labeler_pairs) == (11, 27)
    # Under v1 ann's latest T1 judgement is still the day-1 one: 5 of 16 as before.
    assert (v1.overall.agreeing_pairs, v1.overall.labeler_pairs) == (5, 16)


def test_project_without_comparisons_has_no_figures(db: Session, world: World) -> None:
    empty = make_project(db, "Quiet")

    report = service.agreement_report(db, empty.id).model_dump()

    assert report == {
        "project_id": empty.id,
        "queue_id": None,
        "guideline_version_id": None,
        "overall": figures(0, 0, 0, 0, 0, None, None, 0),
        "queues": [],
        "guideline_versions": [],
        "labelers": [],
    }


def test_a_comparison_queue_without_comparisons_is_listed_with_empty_figures(
    db: Session, world: World
) -> None:
    fresh = make_queue(db, world.project, "fresh", QueueKind.comparison)
    db.commit()

    report = service.agreement_report(db, world.project.id, queue_id=fresh.id)

    assert report.model_dump()["queues"] == [
        {"queue_id": fresh.id, "queue_name": "fresh", **figures(0, 0, 0, 0, 0, None, None, 0)}
    ]
    assert report.overall.pairwise_agreement is None


def test_unknown_project_queue_or_version_is_not_found(db: Session, world: World) -> None:
    other_version = world.other.id  # a project id is no guideline version of this project

    with pytest.raises(NotFound, match=r"^no project with id 999999$"):
        service.agreement_report(db, 999999)
    with pytest.raises(NotFound, match=rf"^no queue with id 999999 in project {world.project.id}$"):
        service.agreement_report(db, world.project.id, queue_id=999999)
    with pytest.raises(NotFound) as found:
        service.agreement_report(db, world.other.id, queue_id=world.chat.id)
    assert found.value.field == "queue_id"
    with pytest.raises(NotFound) as found:
        service.agreement_report(db, world.other.id, guideline_version_id=world.v1.id)
    assert found.value.message == (
        f"no guideline version with id {world.v1.id} in project {other_version}"
    )


# --- consensus --------------------------------------------------------------------------------


def pair(winner: int, loser: int, labelers: int, support: float) -> dict[str, Any]:
    return {
        "winner_response_id": winner,
        "loser_response_id": loser,
        "labelers": labelers,
        "support": approx(support),
        "weight": approx(2 * support - 1),
    }


def test_task_consensus_of_every_task(db: Session, world: World) -> None:
    r = world.r
    found = service.task_consensus(db, [world.t3.id, world.t1.id, world.t2.id, world.t1.id])

    # Weights 289/729 (ann), 289/594 (bob), 235/486 (cat), 127/729 (dan): test_consensus.py.
    wa, wb, wc, wd = 289 / 729, 289 / 594, 235 / 486, 127 / 729
    strong = (wa + wb) / (wa + wb + wd)
    t1 = found[0].model_dump()
    assert [c.task_id for c in found] == [world.t1.id, world.t2.id, world.t3.id]
    assert t1["ranking"] == [[r[1]], [r[2]], [r[3]], [r[4]]]
    assert t1["comparisons"] == 3
    assert t1["support"] == approx((6 * wa + 5 * wb) / (6 * wa + 5 * wb + 6 * wd))
    assert t1["pairs"] == [
        pair(r[1], r[2], 3, strong),
        pair(r[1], r[3], 3, strong),
        pair(r[1], r[4], 3, strong),
        pair(r[2], r[3], 2, 289 / 416),  # bob tied r2 and r3; weight 2 * 289/416 - 1 = 81/208
        pair(r[2], r[4], 3, strong),
        pair(r[3], r[4], 3, strong),
    ]
    assert found[1].ranking == [[r[6]], [r[5]], [r[7]]]
    assert [(p.winner_response_id, p.loser_response_id) for p in found[1].pairs] == [
        (r[6], r[5]),
        (r[6], r[7]),
        (r[5], r[7]),
    ]
    assert found[1].pairs[0].support == approx((wc + wd) / (wa + wc + wd))
    assert found[2].model_dump() == {
        "task_id": world.t3.id,
        "comparisons": 2,
        "ranking": [[r[8]], [r[9]], [r[10]]],
        "support": 1.0,
        "pairs": [pair(r[8], r[9], 2, 1.0), pair(r[8], r[10], 2, 1.0), pair(r[9], r[10], 1, 1.0)],
    }


def test_one_task_alone_gets_the_same_consensus(db: Session, world: World) -> None:
    together = service.task_consensus(db, [world.t1.id, world.t2.id, world.t3.id])

    assert service.task_consensus(db, [world.t2.id]) == [together[1]]


def test_task_without_comparisons_has_an_empty_consensus(db: Session, world: World) -> None:
    task, _ = make_task(db, world.chat, 2)
    db.commit()

    assert service.task_consensus(db, [task.id])[0].model_dump() == {
        "task_id": task.id,
        "comparisons": 0,
        "ranking": [],
        "support": None,
        "pairs": [],
    }


def test_unknown_task_is_not_found(db: Session, world: World) -> None:
    with pytest.raises(NotFound, match=r"^no task with id 999999$"):
        service.task_consensus(db, [world.t1.id, 999999])


def test_consensus_writes_nothing(db: Session, world: World) -> None:
    def rows() -> dict[str, list[tuple[Any, ...]]]:
        db.expire_all()
        return {
            table.name: [tuple(row) for row in db.execute(table.select())]
            for table in Base.metadata.sorted_tables
        }

    before = rows()
    service.task_consensus(db, [world.t1.id, world.t2.id, world.t3.id])
    service.agreement_report(db, world.project.id)

    assert rows() == before


# --- over time and CSV ------------------------------------------------------------------------


def point(start: date, agreeing: int, pairs: int) -> AgreementPoint:
    return AgreementPoint(
        start=start,
        pairwise_agreement=agreeing / pairs,
        agreeing_pairs=agreeing,
        labeler_pairs=pairs,
    )


def test_agreement_over_time_per_day(db: Session, world: World) -> None:
    # Dated by the later judgement: 05-01 ann-bob on T1 5 of 5; 05-02 T1 with dan 0 of 11 and
    # T2 3 of 9 -> 3 of 20; 05-03 bob-cat on T3 2 of 2.
    assert service.agreement_over_time(db, world.project.id) == [
        point(date(2024, 5, 1), 5, 5),
        point(date(2024, 5, 2), 3, 20),
        point(date(2024, 5, 3), 2, 2),
    ]
    assert day(1).date() == date(2024, 5, 1)


def test_agreement_over_time_per_week_and_filtered(db: Session, world: World) -> None:
    # 2024-05-01..03 are Wednesday to Friday of the week starting Monday 2024-04-29.
    weekly = service.agreement_over_time(db, world.project.id, "week")
    gold = service.agreement_over_time(db, world.project.id, queue_id=world.gold.id)

    assert [(p.start, p.agreeing_pairs, p.labeler_pairs) for p in weekly] == [
        (date(2024, 4, 29), 10, 27)
    ]
    assert [(p.start, p.agreeing_pairs, p.labeler_pairs) for p in gold] == [
        (date(2024, 5, 3), 2, 2)
    ]
    with pytest.raises(InvalidInput, match="bucket must be one of day, week"):
        service.agreement_over_time(db, world.project.id, "hour")
    assert service.agreement_over_time(db, make_project(db, "Quiet").id) == []


def test_dashboard_is_the_report_and_the_daily_points(db: Session, world: World) -> None:
    found = service.agreement_dashboard(db, world.project.id, queue_id=world.chat.id)

    assert found.report == service.agreement_report(db, world.project.id, queue_id=world.chat.id)
    assert found.over_time == service.agreement_over_time(
        db, world.project.id, queue_id=world.chat.id
    )


def test_labelers_csv(db: Session, world: World) -> None:
    report = service.agreement_report(db, world.project.id, queue_id=world.gold.id)

    assert service.labelers_csv(report) == (
        "labeler_id,username,comparisons,response_pairs,labeler_pairs,agreeing_pairs,"
        "pairwise_agreement,reliability,gold_pairs,gold_correct,gold_accuracy\n"
        f"{world.bob.id},bob,1,2,2,2,1.0,1.0,3,3,1.0\n"
        f"{world.cat.id},cat,1,2,2,2,1.0,1.0,3,2,{2 / 3!r}\n"
    )


def test_labelers_csv_defuses_formula_like_cells(db: Session, world: World) -> None:
    report = service.agreement_report(db, world.project.id)
    report.labelers[0].username = "-ann"

    assert service.labelers_csv(report).splitlines()[1].split(",")[1] == "'-ann"
