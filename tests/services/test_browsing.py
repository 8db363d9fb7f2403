"""app.services.browsing: the data browser's filters, search and keyset pages, on both
databases."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import Demonstration, LabelSource, PromptCategory, ResponseSource
from app.services import browsing
from app.services.browsing import LabelFilters, PromptFilters
from tests.browsing_world import DAY2, World, build_world


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def ids(db: Session, world: World, **filters: object) -> list[int]:
    page = browsing.list_labels(db, world.project.id, LabelFilters(**filters))  # type: ignore[arg-type]
    return [row.id for row in page.items]


def test_labels_newest_first_with_what_a_reader_needs(db: Session, world: World) -> None:
    page = browsing.list_labels(db, world.project.id, LabelFilters())
    c = world.comparisons
    assert [row.id for row in page.items] == [c[3].id, c[2].id, c[1].id, c[0].id]
    assert page.next_cursor is None
    first = page.items[-1]
    assert (first.labeler, first.queue_name, first.task_id, first.source) == (
        "ada",
        "Main",
        world.tasks[0].id,
        "labeler",
    )
    assert first.prompt_text == "Explain photosynthesis to a child."
    assert (first.flags, first.guideline_version, first.gold) == (["hallucination"], 1, False)
    assert page.items[-2].label_text == "both fine"
    assert (page.items[0].labeler, page.items[0].source_name, page.items[0].gold) == (
        None,
        "hh.jsonl",
        True,
    )


def test_each_filter(db: Session, world: World) -> None:
    c = [comparison.id for comparison in world.comparisons]
    assert ids(db, world, queue_id=world.other_queue.id) == [c[3]]
    assert ids(db, world, labeler_id=world.ada.id) == [c[2], c[0]]
    assert ids(db, world, source=LabelSource.imported) == [c[3]]
    assert ids(db, world, category=PromptCategory.generation) == [c[2]]
    assert ids(db, world, flag="hallucination") == [c[0]]
    assert ids(db, world, flag="sexual_content") == []
    assert ids(db, world, guideline_version=world.version) == [c[0]]
    assert ids(db, world, gold=True) == [c[3]]
    assert ids(db, world, gold=False) == [c[2], c[1], c[0]]
    assert ids(db, world, since=DAY2) == [c[3], c[2]]
    assert ids(db, world, until=DAY2) == [c[1], c[0]]
    assert ids(db, world, labeler_id=world.ada.id, since=DAY2) == [c[2]]


def test_search_matches_prompt_words(db: Session, world: World) -> None:
    c = [comparison.id for comparison in world.comparisons]
    assert ids(db, world, search="photosynthesis") == [c[1], c[0]]
    assert ids(db, world, search="HAIKU rain") == [c[2]]
    assert ids(db, world, search="haiku sunshine") == []
    # Non-ASCII text is found on both (SQLite stores it escaped in the JSON).
    assert ids(db, world, search="café") == [c[3]]
    # LIKE's wildcards are plain characters in a search.
    assert ids(db, world, search="%") == []


def test_keyset_pages_cover_every_row_once_in_order(db: Session, world: World) -> None:
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = browsing.list_labels(db, world.project.id, LabelFilters(), cursor=cursor, limit=3)
        seen += [row.id for row in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    c = world.comparisons
    assert (seen, pages) == ([c[3].id, c[2].id, c[1].id, c[0].id], 2)
    every = [row.id for row in browsing.iter_labels(db, world.project.id, LabelFilters(), batch=1)]
    assert every == seen


def test_demonstrations(db: Session, world: World) -> None:
    demonstration = Demonstration(
        task_id=world.tasks[0].id,
        prompt_id=world.tasks[0].prompt_id,
        labeler_id=world.bob.id,
        source=LabelSource.labeler,
        messages=[{"role": "assistant", "content": "Plants eat light."}],
    )
    db.add(demonstration)
    db.commit()
    page = browsing.list_labels(db, world.project.id, LabelFilters(kind="demonstration"))
    assert [(r.id, r.label_text, r.labeler) for r in page.items] == [
        (demonstration.id, "Plants eat light.", "bob")
    ]
    with pytest.raises(InvalidInput, match="flags belong to comparisons"):
        browsing.list_labels(db, world.project.id, LabelFilters(kind="demonstration", flag="x"))


def test_bad_requests_are_refused(db: Session, world: World) -> None:
    with pytest.raises(InvalidInput, match="kind must be"):
        browsing.list_labels(db, world.project.id, LabelFilters(kind="pairs"))
    with pytest.raises(InvalidInput, match="a flag is a key"):
        browsing.list_labels(db, world.project.id, LabelFilters(flag='x"%'))
    with pytest.raises(InvalidInput, match="cursor"):
        browsing.list_labels(db, world.project.id, LabelFilters(), cursor=0)
    with pytest.raises(InvalidInput, match="limit"):
        browsing.list_labels(db, world.project.id, LabelFilters(), limit=501)
    with pytest.raises(NotFound):
        browsing.list_labels(db, 2**40, LabelFilters())


def test_prompts_filters_and_search(db: Session, world: World) -> None:
    prompt_ids = [task.prompt_id for task in world.tasks]
    page = browsing.list_prompts(db, world.project.id, PromptFilters())
    assert [row.id for row in page.items] == prompt_ids[::-1]
    assert (page.items[0].responses, page.items[0].prompt_text) == (2, "Café au lait?")
    listed = browsing.list_prompts(db, world.project.id, PromptFilters(search="answer"))
    # make_responses writes "answer 0", "answer 1": the search reaches responses too.
    assert [row.id for row in listed.items] == prompt_ids[::-1]
    only = browsing.list_prompts(db, world.project.id, PromptFilters(search="haiku"))
    assert [row.id for row in only.items] == [prompt_ids[1]]
    by_category = browsing.list_prompts(
        db, world.project.id, PromptFilters(category=PromptCategory.generation)
    )
    assert [row.id for row in by_category.items] == [prompt_ids[1]]
    none_by_model = browsing.list_prompts(
        db, world.project.id, PromptFilters(response_source=ResponseSource.model)
    )
    assert none_by_model.items == []
    paged = browsing.list_prompts(db, world.project.id, PromptFilters(), limit=2)
    assert paged.next_cursor == prompt_ids[1]
    rest = browsing.list_prompts(db, world.project.id, PromptFilters(), cursor=paged.next_cursor)
    assert [row.id for row in rest.items] == [prompt_ids[0]]
