"""Open-Assistant trees, nested (one per row) or flat (one message per row): a record per
prompter message (its replies compared when two or more are ranked), every message accounted
for (imported, warned or reported), and bad trees reported once."""

from __future__ import annotations

import io
import json
from typing import Any

from app.datasets.reading import Dataset
from app.datasets.records import Candidate, Record, RowError, Turn


def read(rows: list[dict[str, Any]]) -> list[Record | RowError]:
    data = "\n".join(json.dumps(row) for row in rows).encode() + b"\n"
    dataset = Dataset(io.BytesIO(data), "jsonl")
    assert dataset.format == "oasst"
    return list(dataset)


def msg(
    message_id: str,
    role: str,
    text: str,
    rank: int | None = None,
    replies: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    found = {"message_id": message_id, "role": role, "text": text, "rank": rank, **extra}
    if replies is not None:
        found["replies"] = replies
    return found


TREE = {
    "message_tree_id": "t1",
    "prompt": msg(
        "p1",
        "prompter",
        "Name a fruit.",
        replies=[
            msg(
                "a1",
                "assistant",
                "Apple.",
                1,
                replies=[
                    msg(
                        "p2",
                        "prompter",
                        "Another?",
                        replies=[
                            msg("a4", "assistant", "Pear.", 0),
                            msg("a5", "assistant", "Plum.", 0),
                            msg("a6", "assistant", "Gone.", 1, deleted=True),
                        ],
                    ),
                ],
            ),
            msg("a2", "assistant", "Banana.", 0),
            msg("a3", "assistant", "Fig.", None),
        ],
    ),
}


def test_a_nested_tree_gives_a_record_per_prompter_message() -> None:
    assert read([TREE]) == [
        Record(
            line=1,
            prompt=(Turn("user", "Name a fruit."),),
            demonstration=(Turn("assistant", "Banana."),),
            candidates=(
                Candidate("Apple.", rank=2),
                Candidate("Banana.", rank=1),
                Candidate("Fig.", rank=None),
            ),
            meta={"message_tree_id": "t1", "message_id": "p1"},
            # The tree is one row: its first record stands for it, with every remark.
            rows=1,
            warnings=(
                RowError(
                    1,
                    "message 'a3' has no rank among its siblings; kept as a response, not compared",
                ),
                RowError(1, "message 'a6' is deleted; left out with its 0 replies"),
            ),
        ),
        Record(
            line=1,
            prompt=(
                Turn("user", "Name a fruit."),
                Turn("assistant", "Apple."),
                Turn("user", "Another?"),
            ),
            # A tie at the top: both kept at rank 1, the first is the demonstration.
            demonstration=(Turn("assistant", "Pear."),),
            candidates=(Candidate("Pear.", rank=1), Candidate("Plum.", rank=1)),
            meta={"message_tree_id": "t1", "message_id": "p2"},
            rows=0,
        ),
    ]


def flat_rows() -> list[dict[str, Any]]:
    return [
        {
            "message_id": "p1",
            "parent_id": None,
            "role": "prompter",
            "text": "Q1",
            "rank": None,
            "message_tree_id": "t1",
        },
        {
            "message_id": "a1",
            "parent_id": "p1",
            "role": "assistant",
            "text": "R1",
            "rank": 1,
            "message_tree_id": "t1",
        },
        {
            "message_id": "a2",
            "parent_id": "p1",
            "role": "assistant",
            "text": "R2",
            "rank": 0,
            "message_tree_id": "t1",
        },
        {
            "message_id": "p9",
            "parent_id": None,
            "role": "prompter",
            "text": "Q2",
            "rank": None,
            "message_tree_id": "t2",
        },
        {
            "message_id": "b1",
            "parent_id": "p9",
            "role": "assistant",
            "text": "S1",
            "rank": 0,
            "message_tree_id": "t2",
        },
        {
            "message_id": "b2",
            "parent_id": "p9",
            "role": "assistant",
            "text": "S2",
            "rank": 1,
            "message_tree_id": "t2",
        },
    ]


def test_flat_messages_are_gathered_per_tree() -> None:
    assert read(flat_rows()) == [
        Record(
            line=1,
            prompt=(Turn("user", "Q1"),),
            demonstration=(Turn("assistant", "R2"),),
            candidates=(Candidate("R1", rank=2), Candidate("R2", rank=1)),
            meta={"message_tree_id": "t1", "message_id": "p1"},
            rows=3,
        ),
        Record(
            line=4,
            prompt=(Turn("user", "Q2"),),
            demonstration=(Turn("assistant", "S1"),),
            candidates=(Candidate("S1", rank=1), Candidate("S2", rank=2)),
            meta={"message_tree_id": "t2", "message_id": "p9"},
            rows=3,
        ),
    ]


def test_a_ranked_reply_to_a_missing_message_fails_its_tree_only() -> None:
    rows = flat_rows()
    rows[2]["parent_id"] = "p404"

    assert read(rows)[0] == RowError(
        3, "message 'a2' replies to 'p404', which is not in tree 't1'", rows=3
    )
    assert [type(item).__name__ for item in read(rows)] == ["RowError", "Record"]


def test_bad_messages() -> None:
    rows = flat_rows()
    rows[1]["text"] = ""
    rows[4]["role"] = "bot"

    assert read(rows) == [
        # Each bad tree accounts for its three rows.
        RowError(2, "message 'a1''s text is empty", rows=3),
        RowError(5, "message 'b1' has role 'bot', not 'prompter' or 'assistant'", rows=3),
    ]


def test_a_tree_split_by_another_and_same_role_replies() -> None:
    rows = flat_rows()
    rows.append(
        {
            "message_id": "a3",
            "parent_id": "p1",
            "role": "assistant",
            "text": "late",
            "rank": 2,
            "message_tree_id": "t1",
        }
    )
    nested = {
        "message_tree_id": "t3",
        "prompt": msg("q", "prompter", "Q", replies=[msg("r", "prompter", "again")]),
    }

    assert read(rows)[-1] == RowError(
        7, "tree 't1' continues here after other trees: keep each tree's messages together"
    )
    assert read([nested]) == [
        RowError(1, "message 'r' (prompter) replies to a message of the same role")
    ]


def test_negative_ranks_and_assistant_first_trees() -> None:
    bad_rank = {
        "message_tree_id": "t",
        "prompt": msg("q", "prompter", "Q", replies=[msg("r", "assistant", "A", -1)]),
    }
    assistant_first = {"message_tree_id": "u", "prompt": msg("q", "assistant", "Q")}

    assert read([bad_rank, assistant_first]) == [
        RowError(1, "message 'r' has rank -1, not a whole number from 0"),
        RowError(2, "tree 'u' starts with an assistant message"),
    ]
