"""Every row an import reads is accounted for (issue 16): imported, merged as a repeat,
imported with a warning, or skipped with its line and reason, and the four add up to the
rows read, for each format, on small files holding the cases a user hit: a duplicated row,
a response compared with itself, Open-Assistant replies without a rank, an UltraFeedback row
with one completion."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Comparison, Project, Response
from app.schemas.imports import ImportResult, ImportRowError
from app.services.imports import import_stream
from tests.api.helpers import db_state

TABLES = ("prompts", "responses", "demonstrations", "comparisons", "comparison_items", "pairs")


def make_project(db: Session) -> Project:
    project = Project(name="Accounting", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def jsonl(*rows: dict[str, Any] | str) -> bytes:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    return "\n".join(lines).encode() + b"\n"


def load(db: Session, data: bytes, on_error: str = "skip") -> ImportResult:
    result = import_stream(
        db,
        make_project(db).id,
        io.BytesIO(data),
        "rows.jsonl",
        on_error=on_error,  # type: ignore[arg-type]
        acting=None,
    )
    if not result.stopped:
        assert result.rows_read == (
            result.rows_imported + result.rows_merged + result.rows_warned + result.skipped
        )
    return result


def counts(result: ImportResult) -> tuple[int, ...]:
    return (
        result.rows_read,
        result.rows_imported,
        result.rows_merged,
        result.rows_warned,
        result.skipped,
        result.responses,
        result.responses_merged,
        result.comparisons,
    )


def hh(prompt: str, chosen: str, rejected: str) -> dict[str, str]:
    base = f"\n\nHuman: {prompt}"
    return {
        "chosen": f"{base}\n\nAssistant: {chosen}",
        "rejected": f"{base}\n\nAssistant: {rejected}",
    }


def test_hh_rlhf_a_duplicated_row_is_merged_and_a_shared_response_stored_once(
    db: Session,
) -> None:
    result = load(
        db,
        jsonl(
            hh("Hi", "Hello!", "Go away."),
            hh("Hi", "Hello!", "Go away."),
            hh("Hi", "Hello!", "Whatever."),
            hh("Hi", "Same.", "Same."),
            "{not json",
        ),
    )

    # 5 rows: 2 imported, 1 merged, 2 skipped; "Hello!" and "Go away." stored once each.
    assert counts(result) == (5, 2, 1, 0, 2, 3, 3, 2)
    assert [error.line for error in result.errors] == [4, 5]
    assert result.errors[0] == ImportRowError(
        line=4, reason="chosen and rejected are the same transcript"
    )
    contents = db.scalars(select(Response.content).order_by(Response.id)).all()
    assert contents == ["Hello!", "Go away.", "Whatever."]
    assert len(db.scalars(select(Comparison.id)).all()) == 2


def test_preference_a_response_compared_with_itself_is_skipped_with_its_reason(
    db: Session,
) -> None:
    row = {"prompt": "Q", "chosen": "A", "rejected": "B"}
    same = {"prompt": "Q", "chosen": "A", "rejected": "A"}

    result = load(db, jsonl(row, same))

    assert counts(result) == (2, 1, 0, 0, 1, 2, 0, 1)
    assert result.errors == [
        ImportRowError(
            line=2,
            reason="responses 1 and 2 are the same text ranked differently "
            "(a comparison of a response with itself)",
        )
    ]


def test_preference_in_stop_mode_a_self_comparison_stops_and_keeps_nothing(db: Session) -> None:
    project_state = db_state(db, TABLES)
    same = {"prompt": "Q", "chosen": "A", "rejected": "A"}

    result = load(db, jsonl({"prompt": "Q", "chosen": "A", "rejected": "B"}, same), "stop")

    assert result.stopped
    assert result.stop_error is not None and result.stop_error.line == 2
    assert db_state(db, TABLES) == project_state


def completion(text: str, score: float | None) -> dict[str, Any]:
    return {"model": "m", "response": text, "overall_score": score}


def test_ultrafeedback_one_completion_is_imported_with_a_warning(db: Session) -> None:
    pair = {"instruction": "Q", "completions": [completion("A", 8), completion("B", 3)]}
    result = load(
        db,
        jsonl(
            pair,
            {"instruction": "Lonely", "completions": [completion("Only", 5)]},
            pair,
            # A repeated completion with the same rating is one response.
            {"instruction": "R", "completions": [completion("C", 7), completion("C", 7)]},
        ),
    )

    # Rows: 1 imported, 3 merged (a repeat of 1), 2 and 4 warned: row 4's "C" stored once,
    # and a tie of a response with itself gives no comparison.
    assert counts(result) == (4, 1, 1, 2, 0, 4, 3, 1)
    assert result.warnings == [
        ImportRowError(line=2, reason="one completion, no comparison"),
        ImportRowError(line=4, reason="the ranked responses are one text; kept once, not compared"),
    ]
    contents = db.scalars(select(Response.content).order_by(Response.id)).all()
    assert contents == ["A", "B", "Only", "C"]


def message(
    message_id: str, parent: str | None, role: str, text: str, rank: int | None, **extra: Any
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "parent_id": parent,
        "role": role,
        "text": text,
        "rank": rank,
        "message_tree_id": extra.pop("tree", "t1"),
        **extra,
    }


OASST_FLAT = jsonl(
    message("p1", None, "prompter", "Q1", None),
    message("a1", "p1", "assistant", "Best.", 0),
    message("a2", "p1", "assistant", "Worse.", 1),
    message("a3", "p1", "assistant", "Unranked.", None),
    message("a4", "p1", "assistant", "Gone.", 2, deleted=True),
    message("p5", "a4", "prompter", "Under the gone one.", None),
    message("p9", None, "prompter", "Q2", None, tree="t2"),
    message("b1", "p9", "assistant", "Lone reply.", None, tree="t2"),
    message("p10", "b1", "prompter", "Follow-up.", None, tree="t2"),
)


def test_oasst_flat_every_message_is_imported_warned_or_reported(db: Session) -> None:
    result = load(db, OASST_FLAT)

    # p1, a1, a2 and p10 imported (a top reply is also the demonstration's response); a3
    # and b1 kept as responses with a warning, p9 imported; a4 (deleted by Open-Assistant's
    # moderators) and its reply p5 skipped, counted apart, not listed as errors.
    assert counts(result) == (9, 5, 0, 2, 2, 4, 0, 1)
    assert result.skipped_deleted == 2
    assert result.warnings == [
        ImportRowError(
            line=4,
            reason="message 'a3' has no rank among its siblings; kept as a response, not compared",
        ),
        ImportRowError(
            line=8,
            reason="message 'b1' is not compared: fewer than two replies to 'p9' are ranked; "
            "kept as a response",
        ),
    ]
    assert result.errors == []
    contents = db.scalars(select(Response.content).order_by(Response.id)).all()
    assert sorted(contents) == ["Best.", "Lone reply.", "Unranked.", "Worse."]


def test_oasst_flat_in_stop_mode_a_deleted_message_is_counted_not_a_stop(db: Session) -> None:
    result = load(db, OASST_FLAT, "stop")

    assert (result.stopped, result.stop_error) == (False, None)
    assert counts(result) == (9, 5, 0, 2, 2, 4, 0, 1)
    assert (result.skipped_deleted, result.errors) == (2, [])


def test_oasst_flat_in_stop_mode_a_real_error_still_stops_after_deleted_ones(
    db: Session,
) -> None:
    before = db_state(db, TABLES)
    bad = message("p11", None, "prompter", "", None, tree="t3")

    result = load(db, OASST_FLAT + jsonl(bad), "stop")

    assert (result.stopped, result.stop_error) == (
        True,
        ImportRowError(line=10, reason="message 'p11''s text is empty"),
    )
    assert db_state(db, TABLES) == before


def test_oasst_a_deleted_first_message_skips_its_whole_tree_as_deleted(db: Session) -> None:
    data = jsonl(
        message("p1", None, "prompter", "Spam", None, deleted=True),
        message("a1", "p1", "assistant", "Reply to spam.", 0),
        message("p9", None, "prompter", "Q2", None, tree="t2"),
    )

    result = load(db, data, "stop")

    assert counts(result) == (3, 1, 0, 0, 2, 0, 0, 0)
    assert (result.stopped, result.skipped_deleted, result.errors) == (False, 2, [])


def test_oasst_nested_a_deleted_tree_row_is_skipped_as_deleted(db: Session) -> None:
    tree = {
        "message_tree_id": "t1",
        "prompt": {"message_id": "p1", "role": "prompter", "text": "Spam", "deleted": True},
    }
    kept = {
        "message_tree_id": "t2",
        "prompt": {"message_id": "p2", "role": "prompter", "text": "Q"},
    }

    result = load(db, jsonl(tree, kept), "stop")

    assert counts(result) == (2, 1, 0, 0, 1, 0, 0, 0)
    assert (result.stopped, result.skipped_deleted, result.errors) == (False, 1, [])


def test_oasst_nested_a_tree_row_with_an_unranked_reply_is_one_warned_row(db: Session) -> None:
    tree = {
        "message_tree_id": "t1",
        "prompt": {
            "message_id": "p1",
            "role": "prompter",
            "text": "Q",
            "replies": [{"message_id": "a1", "role": "assistant", "text": "Only.", "rank": None}],
        },
    }

    result = load(db, jsonl(tree))

    assert counts(result) == (1, 0, 0, 1, 0, 1, 0, 0)
    assert result.warnings == [
        ImportRowError(
            line=1,
            reason="message 'a1' is not compared: fewer than two replies to 'p1' are ranked; "
            "kept as a response",
        )
    ]


def test_importing_the_same_file_again_stores_no_response_twice(db: Session) -> None:
    project = make_project(db)
    data = jsonl(hh("Hi", "Hello!", "Go away."))
    for _ in range(2):
        result = import_stream(
            db, project.id, io.BytesIO(data), "rows.jsonl", on_error="skip", acting=None
        )

    assert (result.responses, result.responses_merged, result.rows_imported) == (0, 2, 0)
    assert (result.rows_merged, result.comparisons) == (1, 0)
    assert db.scalars(select(Response.content).order_by(Response.id)).all() == [
        "Hello!",
        "Go away.",
    ]
