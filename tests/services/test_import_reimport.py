"""Importing the same file again stores nothing twice (issue 16): every row of the second
import is merged and counted, for each format that makes comparisons or demonstrations. The
same judgement from another source, or a changed ranking from the same one, is new."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.models import Project
from app.schemas.imports import ImportResult
from app.services.imports import import_stream
from tests.api.helpers import db_state

TABLES = ("prompts", "responses", "demonstrations", "comparisons", "comparison_items", "pairs")


def jsonl(*rows: dict[str, Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def hh(prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    base = f"\n\nHuman: {prompt}"
    return {
        "chosen": f"{base}\n\nAssistant: {chosen}",
        "rejected": f"{base}\n\nAssistant: {rejected}",
    }


def completion(text: str, score: float | None) -> dict[str, Any]:
    return {"model": "m", "response": text, "overall_score": score}


def message(mid: str, parent: str | None, role: str, rank: int | None, **extra: Any) -> dict:
    return {
        "message_id": mid,
        "parent_id": parent,
        "role": role,
        "text": f"Text {mid}",
        "rank": rank,
        "message_tree_id": extra.pop("tree", "t1"),
        **extra,
    }


FILES = {
    "hh-rlhf": jsonl(hh("Hi", "Hello!", "Go away."), hh("Bye", "Goodbye!", "Whatever.")),
    "preference": jsonl(
        {"prompt": "Q", "chosen": "A", "rejected": "B"},
        {"prompt": "R", "chosen": "C", "rejected": "D"},
    ),
    "ultrafeedback": jsonl(
        {"instruction": "Q", "completions": [completion("A", 8), completion("B", 3)]},
        {"instruction": "R", "completions": [completion("C", 4.5), completion("D", 2.5)]},
        {"instruction": "Lonely", "completions": [completion("Only", 5)]},
    ),
    "oasst-flat": jsonl(
        message("p1", None, "prompter", None),
        message("a1", "p1", "assistant", 0),
        message("a2", "p1", "assistant", 1),
        message("a3", "p1", "assistant", None),
        message("a4", "p1", "assistant", 2, deleted=True),
        message("p9", None, "prompter", None, tree="t2"),
        message("b1", "p9", "assistant", None, tree="t2"),
    ),
    "oasst-nested": jsonl(
        {
            "message_tree_id": "t1",
            "prompt": {
                "message_id": "p1",
                "role": "prompter",
                "text": "Q",
                "replies": [
                    {"message_id": "a1", "role": "assistant", "text": "A", "rank": 0},
                    {"message_id": "a2", "role": "assistant", "text": "B", "rank": 1},
                ],
            },
        }
    ),
    "sft": jsonl(
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"prompt": "R", "completion": "B"},
    ),
}


def make_project(db: Session) -> Project:
    project = Project(name="Again", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def load(db: Session, project: Project, data: bytes, name: str = "rows.jsonl") -> ImportResult:
    result = import_stream(db, project.id, io.BytesIO(data), name, on_error="stop", acting=None)
    assert not result.stopped, result.stop_error
    assert result.rows_read == (
        result.rows_imported + result.rows_merged + result.rows_warned + result.skipped
    )
    return result


@pytest.mark.parametrize("kind", sorted(FILES))
def test_the_same_file_imported_again_stores_nothing_and_merges_every_row(
    db: Session, kind: str
) -> None:
    project = make_project(db)
    first = load(db, project, FILES[kind])
    stored = db_state(db, TABLES)

    again = load(db, project, FILES[kind])

    assert first.comparisons + first.demonstrations > 0
    assert db_state(db, TABLES) == stored
    assert (
        again.rows_read,
        again.rows_imported,
        again.rows_warned,
        again.rows_merged,
        again.skipped,
    ) == (first.rows_read, 0, 0, first.rows_read - first.skipped, first.skipped)
    assert (again.prompts_created, again.responses, again.comparisons, again.pairs) == (0, 0, 0, 0)
    assert again.demonstrations == 0
    assert again.prompts_reused == first.records_imported


def test_the_same_comparisons_from_another_source_are_a_new_judgement(db: Session) -> None:
    project = make_project(db)
    load(db, project, FILES["hh-rlhf"], "first.jsonl")

    other = load(db, project, FILES["hh-rlhf"], "second.jsonl")

    assert (other.rows_imported, other.rows_merged, other.comparisons, other.pairs) == (2, 0, 2, 2)
    assert (other.responses, other.responses_merged) == (0, 4)


def test_a_changed_ranking_from_the_same_source_is_stored(db: Session) -> None:
    project = make_project(db)
    load(db, project, jsonl(hh("Hi", "Hello!", "Go away.")))

    swapped = load(
        db, project, jsonl(hh("Hi", "Go away.", "Hello!"), hh("Hi", "Hello!", "Go away."))
    )

    assert (swapped.rows_imported, swapped.rows_merged, swapped.comparisons) == (1, 1, 1)


def test_a_demonstration_already_imported_is_merged_while_a_new_comparison_is_stored(
    db: Session,
) -> None:
    project = make_project(db)
    tree = json.loads(FILES["oasst-nested"])
    load(db, project, FILES["oasst-nested"])
    # The same top reply, but a third reply joins the ranking: a new comparison.
    tree["prompt"]["replies"].append(
        {"message_id": "a3", "role": "assistant", "text": "C", "rank": 2}
    )

    grown = load(db, project, jsonl(tree))

    assert (grown.rows_imported, grown.rows_merged) == (1, 0)
    assert (grown.comparisons, grown.pairs, grown.demonstrations) == (1, 3, 0)
    assert (grown.responses, grown.responses_merged) == (1, 2)


def test_a_row_without_labels_whose_prompt_is_there_is_merged_whatever_its_source(
    db: Session,
) -> None:
    project = make_project(db)
    prompts = jsonl({"prompt": "Q"}, {"prompt": "R"})
    load(db, project, prompts, "first.jsonl")

    other = load(db, project, jsonl({"prompt": "Q"}, {"prompt": "S"}), "second.jsonl")

    assert (other.rows_imported, other.rows_merged) == (1, 1)
    assert (other.prompts_created, other.prompts_reused) == (1, 1)
