"""The data browser's "agreement below x" (the stored per-task agreement), its skips (a third
kind of label row: who skipped which task, why) and the prompts a labeler skipped, on both
databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import LabelSource, PromptCategory
from app.schemas.labeling import SkipReason
from app.services import browsing
from app.services.browsing import LabelFilters, PromptFilters
from tests.browsing_world import DAY2, World, build_world
from tests.skips_world import DAY3, Extras, add_disagreement_and_skips


@pytest.fixture
def world(db: Session) -> tuple[World, Extras]:
    world = build_world(db)
    return world, add_disagreement_and_skips(db, world)


def ids(db: Session, world: World, **filters: object) -> list[int]:
    page = browsing.list_labels(db, world.project.id, LabelFilters(**filters))  # type: ignore[arg-type]
    return [row.id for row in page.items]


def test_agreement_below_picks_the_labels_of_disagreeing_tasks(
    db: Session, world: tuple[World, Extras]
) -> None:
    found, extras = world
    c = [comparison.id for comparison in found.comparisons]
    d = extras.disagreeing.id
    assert ids(db, found) == [d, c[3], c[2], c[1], c[0]]
    assert ids(db, found, agreement_below=0.5) == [d, c[2]]
    # Task 0's 1.0 is not below 1; task 2 (an import only) has no figure.
    assert ids(db, found, agreement_below=1.0) == [d, c[2]]
    assert ids(db, found, agreement_below=0.0) == []
    assert ids(db, found, agreement_below=0.5, labeler_id=extras.cy.id) == [d]
    rows = browsing.list_labels(db, found.project.id, LabelFilters()).items
    assert [row.task_agreement for row in rows] == [0.0, None, 0.0, 1.0, 1.0]


def test_skips_are_rows_with_who_which_task_why_and_how_long(
    db: Session, world: tuple[World, Extras]
) -> None:
    found, extras = world
    ada_skip, bob_skip = extras.skips
    page = browsing.list_labels(db, found.project.id, LabelFilters(kind="skip"))
    assert [
        (
            row.kind,
            row.id,
            row.labeler,
            row.task_id,
            row.queue_name,
            row.skip_reason,
            row.label_text,
            row.time_spent_seconds,
            row.gold,
            row.task_agreement,
            row.source,
        )
        for row in page.items
    ] == [
        ("skip", bob_skip.id, "bob", found.tasks[2].id, "Second", "broken_task", "", 5.0, True,
         None, "labeler"),
        ("skip", ada_skip.id, "ada", found.tasks[1].id, "Main", "unclear_prompt",
         "What is asked here?", 40.0, False, 0.0, "labeler"),
    ]  # fmt: skip
    assert page.items[1].created_at == DAY3 + timedelta(seconds=50)
    assert page.items[1].prompt_text == "Write a haiku about rain."


def test_each_filter_on_skips(db: Session, world: tuple[World, Extras]) -> None:
    found, extras = world
    ada_skip, bob_skip = (skip.id for skip in extras.skips)
    skip = {"kind": "skip"}
    assert ids(db, found, **skip, skip_reason=SkipReason.broken_task) == [bob_skip]
    assert ids(db, found, **skip, gold=True) == [bob_skip]
    assert ids(db, found, **skip, gold=False) == [ada_skip]
    assert ids(db, found, **skip, labeler_id=found.ada.id) == [ada_skip]
    assert ids(db, found, **skip, queue_id=found.other_queue.id) == [bob_skip]
    assert ids(db, found, **skip, category=PromptCategory.generation) == [ada_skip]
    assert ids(db, found, **skip, search="haiku") == [ada_skip]
    assert ids(db, found, **skip, agreement_below=0.5) == [ada_skip]
    assert ids(db, found, **skip, since=DAY3) == [bob_skip, ada_skip]
    assert ids(db, found, **skip, until=DAY2) == []
    assert ids(db, found, **skip, source=LabelSource.labeler) == [bob_skip, ada_skip]
    assert ids(db, found, **skip, source=LabelSource.imported) == []
    first = browsing.list_labels(db, found.project.id, LabelFilters(kind="skip"), limit=1)
    assert (len(first.items), first.next_cursor) == (1, bob_skip)
    rest = browsing.list_labels(
        db, found.project.id, LabelFilters(kind="skip"), cursor=bob_skip, limit=1
    )
    assert ([row.id for row in rest.items], rest.next_cursor) == ([ada_skip], None)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"kind": "skip", "flag": "hallucination"}, "flag"),
        ({"kind": "skip", "guideline_version": 1}, "guideline_version"),
        ({"kind": "comparison", "skip_reason": SkipReason.other}, "skip_reason"),
        ({"kind": "demonstration", "agreement_below": 0.5}, "agreement_below"),
        ({"agreement_below": 1.5}, "agreement_below"),
        ({"agreement_below": -0.1}, "agreement_below"),
        ({"kind": "pairs"}, "kind"),
    ],
)
def test_bad_filters_name_their_field(
    db: Session, world: tuple[World, Extras], filters: dict[str, object], field: str
) -> None:
    found, _ = world
    with pytest.raises(InvalidInput) as raised:
        browsing.list_labels(db, found.project.id, LabelFilters(**filters))  # type: ignore[arg-type]
    assert raised.value.field == field


def test_the_csv_carries_agreement_and_skip_reason(
    db: Session, world: tuple[World, Extras]
) -> None:
    found, extras = world
    lines = list(browsing.labels_csv(db, found.project.id, LabelFilters(kind="skip")))
    assert lines[0].rstrip("\n").split(",")[-3:] == [
        "time_spent_seconds",
        "task_agreement",
        "skip_reason",
    ]
    assert lines[2].rstrip("\n").split(",")[-3:] == ["40.0", "0.0", "unclear_prompt"]
    assert lines[2].split(",")[:2] == ["skip", str(extras.skips[0].id)]
    low = list(browsing.labels_csv(db, found.project.id, LabelFilters(agreement_below=0.5)))
    assert [line.split(",")[1] for line in low[1:]] == [
        str(extras.disagreeing.id),
        str(found.comparisons[2].id),
    ]


def test_prompts_a_labeler_skipped(db: Session, world: tuple[World, Extras]) -> None:
    found, _ = world
    prompt_ids = [task.prompt_id for task in found.tasks]
    skipped = browsing.list_prompts(db, found.project.id, PromptFilters(skipped=True))
    assert [row.id for row in skipped.items] == [prompt_ids[2], prompt_ids[1]]
    never = browsing.list_prompts(db, found.project.id, PromptFilters(skipped=False))
    assert [row.id for row in never.items] == [prompt_ids[0]]
