"""Snapshots choose whose labels they take: people's (the default), the judge's, both with a
weight per source (rows repeated), or the judge's on the categories where it agrees with
people, on the hand-worked world of tests/judge_world.py.

That world's pairs: people's 15 (T1 3 labelers x 1 pair, T2 3 x 3, T3 2 x 1, T4 1 x 1), the
judge's 5 (T1 1, T2 3, T3 1). The judge agrees with people on chat 2/4 and brainstorming 1/1.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Comparison, JudgeTemplate, LabelSource, Role
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.snapshots import create_snapshot, export_judgements
from app.settings import Settings
from tests.conftest import make_user
from tests.judge_world import JudgeWorld, build_judge_world


@pytest.fixture
def world(db: Session, settings: Settings) -> JudgeWorld:
    settings.ensure_data_dir()
    return build_judge_world(db, settings.data_dir)


def rows_by_source(
    db: Session, settings: Settings, world: JudgeWorld, **filters: Any
) -> tuple[Counter[str], dict[str, Any]]:
    researcher = make_user(db, f"rhea{len(filters)}{id(filters)}", Role.researcher)
    made = create_snapshot(
        db,
        settings,
        world.project.id,
        SnapshotCreate(
            name="sources",
            kind="preference",
            filters=SnapshotFilters(test_fraction=0.0, **filters),
        ),
        researcher,
    )
    ai = set(db.scalars(select(Comparison.id).where(Comparison.source == LabelSource.ai)))
    text = (settings.data_dir / made.path / "train.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines()]
    return Counter("ai" if row["comparison_id"] in ai else "human" for row in rows), made.filters


def test_people_only_by_default_then_ai_only(
    db: Session, settings: Settings, world: JudgeWorld
) -> None:
    counts, stored = rows_by_source(db, settings, world)
    assert counts == {"human": 15}
    assert stored["sources_in_words"] == (
        "People's labels only (labelers' and imported); no AI labels"
    )
    counts, stored = rows_by_source(db, settings, world, label_sources="ai")
    assert counts == {"ai": 5}
    assert stored["sources_in_words"] == "AI labels only, of every judge"


def test_both_sources_weighted_by_repeating_rows(
    db: Session, settings: Settings, world: JudgeWorld
) -> None:
    counts, stored = rows_by_source(
        db, settings, world, label_sources="both", judge_model_id=world.judge.id, human_weight=2
    )
    assert counts == {"human": 30, "ai": 5}
    assert stored["sources_in_words"] == (
        "People's labels and the AI labels of judge judge-lm; each human row written 2 times, "
        "each AI row 1 times"
    )


def test_the_judge_where_it_agrees_with_people_and_people_elsewhere(
    db: Session, settings: Settings, world: JudgeWorld
) -> None:
    template = db.scalar(select(JudgeTemplate.id))
    rule = {
        "label_sources": "ai_where_agreeing",
        "judge_model_id": world.judge.id,
        "judge_template_id": template,
    }
    counts, stored = rows_by_source(db, settings, world, min_judge_agreement=0.9, **rule)
    # Brainstorming (1/1) takes the judge's T3 pair; chat (2/4) people's T1 and T2 pairs.
    assert counts == {"ai": 1, "human": 12}
    assert stored["ai_categories"] == ["brainstorming"]
    assert stored["sources_in_words"] == (
        "AI labels of judge judge-lm (template version 1) on the prompt categories where it "
        "agrees with people's consensus at least 0.9 (brainstorming); people's labels elsewhere"
    )
    counts, stored = rows_by_source(db, settings, world, min_judge_agreement=0.5, **rule)
    assert counts == {"ai": 5}
    assert stored["ai_categories"] == ["brainstorming", "chat"]


@pytest.mark.parametrize(
    ("filters", "kind", "message"),
    [
        ({"human_weight": 2}, "preference", "set label_sources \"both\""),
        ({"label_sources": "ai_where_agreeing", "judge_model_id": 1}, "preference",
         "needs the judge"),
        ({"label_sources": "both", "ai_weight": 3}, "sft", "ai_weight does not apply here: only"),
        ({"label_sources": "ai", "judge_model_id": 999999}, "preference", "no model with id"),
        ({"ai_categories": ["chat"]}, "preference", "worked out from the rule"),
    ],
)  # fmt: skip
def test_bad_source_filters_are_refused(
    db: Session, settings: Settings, world: JudgeWorld, filters: dict, kind: str, message: str
) -> None:
    researcher = make_user(db, "rhea", Role.researcher)
    with pytest.raises((InvalidInput, ValueError), match=message):
        create_snapshot(
            db,
            settings,
            world.project.id,
            SnapshotCreate(name="bad", kind=kind, filters=SnapshotFilters(**filters)),
            researcher,
        )


def test_raw_exports_take_people_only_unless_asked(
    db: Session, settings: Settings, world: JudgeWorld
) -> None:
    human = export_judgements(db, settings, world.project.id, "raw", SnapshotFilters())
    both = export_judgements(
        db, settings, world.project.id, "raw", SnapshotFilters(label_sources="both")
    )
    assert (human.row_counts["train"] + human.row_counts["test"]) + 3 == (
        both.row_counts["train"] + both.row_counts["test"]
    )
