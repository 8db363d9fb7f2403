"""Exact rows of every snapshot kind and export, and each filter's effect."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Role, Snapshot
from app.schemas.reviews import ReviewCreate
from app.schemas.snapshots import SnapshotFilters
from app.services import reviews
from app.services.snapshots import export_judgements
from app.services.snapshots.judgements import kto_label
from app.settings import Settings
from tests.conftest import make_user
from tests.services.snapshots.conftest import World
from tests.services.snapshots.helpers import lines, said, snapshot, user


def pair_row(
    world: World,
    index: int,
    weight: float | None,
    flags_chosen: list[str] | None = None,
    flags_rejected: list[str] | None = None,
) -> dict[str, Any]:
    found = world.pairs[index]
    comparison = next(c for c in world.comparisons.values() if c.id == found.comparison_id)
    responses = {r.id: r for r in world.r1 + world.r2 + world.r3}
    prompt = next(p for p in world.prompts if p.id == found.prompt_id)
    return {
        "prompt": prompt.messages,
        "chosen": said(responses[found.winner_response_id]),
        "rejected": said(responses[found.loser_response_id]),
        # Asked for ("score_gap"): the pair's score difference, 0.0 where it has none.
        "margin": found.margin or 0.0,
        "weight": weight,
        "labeler_id": comparison.labeler_id,
        "comparison_id": comparison.id,
        "pair_id": found.id,
        "flags_chosen": flags_chosen or [],
        "flags_rejected": flags_rejected or [],
        "guideline_version_id": comparison.guideline_version_id,
        "task_id": comparison.task_id,
        "prompt_id": prompt.id,
        "chosen_response_id": found.winner_response_id,
        "rejected_response_id": found.loser_response_id,
    }


def test_preference_pairs_rows(db: Session, settings: Settings, world: World) -> None:
    made = snapshot(db, settings, world, "preference", "pairs", margin="score_gap")
    plain = snapshot(db, settings, world, "preference", "pairs")

    # t1: the consensus ties a and b in support (weight 0: ann and bob split), a>c and b>c
    # have full support; bob's b>a is not the consensus order. t2 has ann alone.
    assert lines(settings, made.path) == [
        pair_row(world, 0, 0.0),
        pair_row(world, 1, 1.0, flags_rejected=["hallucination"]),
        pair_row(world, 2, 0.0),
        pair_row(world, 3, 1.0),
        pair_row(world, 4, 1.0),
        pair_row(world, 5, 1.0),
    ]
    assert made.row_counts == {"train": 6, "test": 0}
    assert (made.filters["source"], made.filters["margin"]) == ("pairs", "score_gap")
    assert lines(settings, made.path, "test") == []
    # Not asked for, no margin column (TRL's RewardTrainer would put it into its loss).
    assert plain.filters["margin"] == "none"
    assert lines(settings, plain.path) == [
        {name: value for name, value in row.items() if name != "margin"}
        for row in lines(settings, made.path)
    ]


def test_preference_consensus_rows(db: Session, settings: Settings, world: World) -> None:
    made = snapshot(db, settings, world, "preference", "consensus", margin="score_gap")
    plain = snapshot(db, settings, world, "preference", "consensus")

    a, b, c = world.r1
    t1, t2, _ = world.tasks
    p1, p2, _ = world.prompts

    def row(task, prompt, chosen, rejected, margin, weight, flags, version):  # type: ignore[no-untyped-def]
        return {
            "prompt": prompt.messages,
            "chosen": said(chosen),
            "rejected": said(rejected),
            "margin": margin,
            "weight": weight,
            "flags_chosen": [],
            "flags_rejected": flags,
            "guideline_version_id": version,
            "task_id": task.id,
            "prompt_id": prompt.id,
            "chosen_response_id": chosen.id,
            "rejected_response_id": rejected.id,
        }

    # Margins: a-b is (6-4 + 5-7)/2, a-c (2 + 3)/2, b-c (0 + 5)/2. t1 was judged under two
    # versions (none given), t2 under v1; t3 (all unacceptable) has no consensus.
    assert lines(settings, made.path) == [
        row(t1, p1, a, b, 0.0, 0.0, [], None),
        row(t1, p1, a, c, 2.5, 1.0, ["hallucination"], None),
        row(t1, p1, b, c, 2.5, 1.0, ["hallucination"], None),
        row(t2, p2, world.r2[0], world.r2[1], 2.0, 1.0, [], world.v1.id),
    ]
    # A consensus row has no labeler, comparison or pair: no such (all-null) columns.
    assert lines(settings, plain.path) == [
        {name: value for name, value in row.items() if name != "margin"}
        for row in lines(settings, made.path)
    ]


def test_a_rejected_comparison_leaves_the_consensus_rows(
    db: Session, settings: Settings, world: World
) -> None:
    """Reviewing bob's t1 comparison as rejected: t1's consensus is ann's alone (a over b and
    c, b and c tied), made under v1, and her scores give the margins."""
    admin = make_user(db, "reviewer", Role.admin)
    bob1 = next(
        comparison
        for comparison in world.comparisons.values()
        if comparison.task_id == world.tasks[0].id and comparison.labeler_id == world.bob.id
    )
    reviews.review_comparison(
        db, bob1.id, admin, ReviewCreate(verdict="rejected", reason="ranked b first unread")
    )
    made = snapshot(db, settings, world, "preference", "consensus", margin="score_gap")

    a, b, c = world.r1
    t1, t2, _ = world.tasks
    found = [
        (row["task_id"], row["chosen_response_id"], row["rejected_response_id"], row["margin"],
         row["weight"], row["flags_rejected"], row["guideline_version_id"])
        for row in lines(settings, made.path)
    ]  # fmt: skip
    assert found == [
        (t1.id, a.id, b.id, 2.0, 1.0, [], world.v1.id),
        (t1.id, a.id, c.id, 2.0, 1.0, ["hallucination"], world.v1.id),
        (t2.id, world.r2[0].id, world.r2[1].id, 2.0, 1.0, [], world.v1.id),
    ]


def test_sft_rows(db: Session, settings: Settings, world: World) -> None:
    made = snapshot(db, settings, world, "sft")

    first, second = world.demonstrations
    assert lines(settings, made.path) == [
        {
            "messages": [*user("Prompt one"), {"role": "assistant", "content": "Demo one"}],
            "prompt_id": world.prompts[0].id,
            "demonstration_id": first.id,
            "task_id": first.task_id,
            "labeler_id": world.ann.id,
            "guideline_version_id": world.v1.id,
        },
        {
            "messages": [
                *user("Prompt three"),
                {"role": "assistant", "content": "Demo three"},
                {"role": "user", "content": "More?"},
                {"role": "assistant", "content": "Yes."},
            ],
            "prompt_id": world.prompts[2].id,
            "demonstration_id": second.id,
            "task_id": None,
            "labeler_id": world.bob.id,
            "guideline_version_id": world.v2.id,
        },
    ]


def test_prompts_rows(db: Session, settings: Settings, world: World) -> None:
    made = snapshot(db, settings, world, "prompts")

    assert lines(settings, made.path) == [
        {"prompt": user(text), "prompt_id": prompt.id}
        for text, prompt in zip(
            ("Prompt one", "Prompt two", "Prompt three"), world.prompts, strict=True
        )
    ]


def test_raw_export_keeps_every_judgement(db: Session, settings: Settings, world: World) -> None:
    made = export_judgements(
        db, settings, world.project.id, "raw", SnapshotFilters(test_fraction=0)
    )

    rows = lines(settings, made.path)
    assert made.row_counts == {"train": 4, "test": 0}
    assert [row["comparison_id"] for row in rows] == [c.id for c in world.comparisons.values()]
    ann1, bob3 = rows[0], rows[3]
    a, b, c = world.r1
    assert ann1 == {
        "prompt": user("Prompt one"),
        "items": [
            {
                "response_id": a.id,
                "completion": said(a),
                "score": 6,
                "rank": 1,
                "flags": [],
                "flag_note": "",
            },
            {
                "response_id": b.id,
                "completion": said(b),
                "score": 4,
                "rank": 2,
                "flags": [],
                "flag_note": "",
            },
            {
                "response_id": c.id,
                "completion": said(c),
                "score": 4,
                "rank": 2,
                "flags": ["hallucination"],
                "flag_note": "",
            },
        ],
        "all_unacceptable": False,
        "comment": "",
        "comparison_id": world.comparisons["ann1"].id,
        "task_id": world.tasks[0].id,
        "labeler_id": world.ann.id,
        "source": "labeler",
        "guideline_version_id": world.v1.id,
        "time_spent_seconds": None,
        "created_at": "2024-01-10T12:00:00+00:00",
        "prompt_id": world.prompts[0].id,
    }
    assert bob3["all_unacceptable"] is True
    assert [(item["rank"], item["score"], item["flags"]) for item in bob3["items"]] == [
        (None, 2, ["harmful"]),
        (None, 1, []),
    ]

    unflagged = export_judgements(
        db,
        settings,
        world.project.id,
        "raw",
        SnapshotFilters(test_fraction=0, exclude_flagged=True),
    )
    assert [row["comparison_id"] for row in lines(settings, unflagged.path)] == [
        world.comparisons["bob1"].id,
        world.comparisons["ann2"].id,
    ]


def test_kto_export_labels_from_scores_and_flags(
    db: Session, settings: Settings, world: World
) -> None:
    made = export_judgements(
        db, settings, world.project.id, "kto", SnapshotFilters(test_fraction=0)
    )

    rows = lines(settings, made.path)
    a, b, c = world.r1
    got = [(row["comparison_id"], row["response_id"], row["label"], row["score"]) for row in rows]
    ann1, bob1 = world.comparisons["ann1"].id, world.comparisons["bob1"].id
    ann2, bob3 = world.comparisons["ann2"].id, world.comparisons["bob3"].id
    assert got == [
        (ann1, a.id, True, 6),  # b scored 4: neither, no row
        (ann1, c.id, False, 4),  # flagged
        (bob1, a.id, True, 5),
        (bob1, b.id, True, 7),
        (bob1, c.id, False, 2),
        (ann2, world.r2[0].id, True, 5),
        (ann2, world.r2[1].id, False, 3),
        (bob3, world.r3[0].id, False, 2),  # all unacceptable
        (bob3, world.r3[1].id, False, 1),
    ]
    assert rows[0] == {
        "prompt": user("Prompt one"),
        "completion": said(a),
        "label": True,
        "score": 6,
        "flags": [],
        "comparison_id": ann1,
        "labeler_id": world.ann.id,
        "guideline_version_id": world.v1.id,
        "task_id": world.tasks[0].id,
        "prompt_id": world.prompts[0].id,
        "response_id": a.id,
    }
    unflagged = export_judgements(
        db,
        settings,
        world.project.id,
        "kto",
        SnapshotFilters(test_fraction=0, exclude_flagged=True),
    )
    assert unflagged.row_counts == {"train": 7, "test": 0}


@pytest.mark.parametrize(
    ("score", "flags", "unacceptable", "label"),
    [
        (5, [], False, True),
        (7, [], False, True),
        (4, [], False, None),
        (None, [], False, None),
        (3, [], False, False),
        (1, [], False, False),
        (7, ["harmful"], False, False),
        (6, [], True, False),
    ],
)
def test_kto_label_rule(
    score: int | None, flags: list[str], unacceptable: bool, label: bool | None
) -> None:
    assert kto_label(score, flags, unacceptable) is label


def pair_ids(settings: Settings, made: Snapshot) -> list[int]:
    return [row["pair_id"] for row in lines(settings, made.path)]


def test_each_filter_of_pairs(db: Session, settings: Settings, world: World) -> None:
    p = [found.id for found in world.pairs]

    def ids(**filters: Any) -> list[int]:
        return pair_ids(settings, snapshot(db, settings, world, "preference", "pairs", **filters))

    assert ids(queue_ids=[world.q1.id]) == p[:5]
    assert ids(queue_ids=[world.q2.id]) == [p[5]]
    assert ids(exclude_gold=True) == p[:5]
    assert ids(exclude_flagged=True) == [p[0], p[2], p[3], p[4], p[5]]
    assert ids(labeler_ids=[world.bob.id]) == p[2:5]
    assert ids(guideline_version_ids=[world.v1.id]) == [p[0], p[1], p[5]]
    assert ids(created_from="2024-02-01T00:00:00Z") == p[2:5]
    assert ids(created_to="2024-02-01T00:00:00Z") == [p[0], p[1], p[5]]
    # t1's agreement is 1 of 2 labeler pairs; t2 has one labeler, so no agreement to show.
    assert ids(min_agreement=0.5) == p[:5]
    with pytest.raises(InvalidInput) as empty:
        ids(min_agreement=0.6)
    assert str(empty.value) == (
        f"the snapshot would have no rows: project {world.project.id} has no compared pairs "
        "(labelers' or imported) that pass its filters (min_agreement); nothing was written"
    )
    assert ids(labeler_ids=[world.ann.id], exclude_gold=True, exclude_flagged=True) == [p[0]]


def test_filters_of_other_kinds(db: Session, settings: Settings, world: World) -> None:
    def count(kind: str, source: str | None = None, **filters: Any) -> int:
        return snapshot(db, settings, world, kind, source, **filters).row_counts["train"]

    assert count("sft", labeler_ids=[world.bob.id]) == 1
    assert count("sft", queue_ids=[world.demo_queue.id]) == 1
    assert count("sft", guideline_version_ids=[world.v2.id]) == 1
    assert count("sft", created_to="2024-01-31T00:00:00Z") == 1
    assert count("prompts", exclude_gold=True) == 2
    assert count("prompts", queue_ids=[world.q2.id]) == 1
    with pytest.raises(InvalidInput) as empty:
        count("prompts", created_to="2000-01-01T00:00:00Z")
    assert str(empty.value) == (
        f"the snapshot would have no rows: project {world.project.id} has no prompts that "
        "pass its filters (created_to); nothing was written"
    )
    assert count("preference", "consensus", exclude_gold=True) == 3
    assert count("preference", "consensus", exclude_flagged=True) == 2
    assert count("preference", "consensus", min_agreement=0.5) == 3
    assert count("preference", "consensus", queue_ids=[world.q2.id]) == 1


@pytest.mark.parametrize(
    ("kind", "source", "filters", "field"),
    [
        ("sft", None, {"exclude_flagged": True}, "filters.exclude_flagged"),
        ("sft", None, {"min_agreement": 0.5}, "filters.min_agreement"),
        ("prompts", None, {"labeler_ids": [1]}, "filters.labeler_ids"),
        (
            "preference",
            "consensus",
            {"guideline_version_ids": [1]},
            "filters.guideline_version_ids",
        ),
        ("preference", "pairs", {"queue_ids": [999999]}, "filters.queue_ids"),
        (
            "preference",
            "pairs",
            {"guideline_version_ids": [999999]},
            "filters.guideline_version_ids",
        ),
        ("preference", "pairs", {"labeler_ids": [999999]}, "filters.labeler_ids"),
    ],
)
def test_bad_filters_change_nothing(
    db: Session,
    settings: Settings,
    world: World,
    kind: str,
    source: str | None,
    filters: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as raised:
        snapshot(db, settings, world, kind, source, **filters)
    assert raised.value.field == field
    assert db.scalar(select(func.count()).select_from(Snapshot)) == 0
    assert not (settings.data_dir / "snapshots").exists() or not any(
        (settings.data_dir / "snapshots").iterdir()
    )
