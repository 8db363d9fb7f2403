"""Importing files (app.services.imports.import_stream / import_file): the issue's bad inputs
each reported precisely with nothing half-imported, skip mode counting what it skipped, and
file names that cannot leave the import folder."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.datasets.dialogue import DialogueFilters
from app.errors import InvalidInput
from app.models import Project
from app.schemas.imports import DialogueFilterReport, ImportResult, ImportRowError
from app.services.imports import import_file, import_stream, resolve_import_path
from tests.api.helpers import db_state

TABLES = ("prompts", "responses", "demonstrations", "comparisons", "comparison_items", "pairs")
MB = 1024 * 1024


def make_project(db: Session) -> Project:
    project = Project(name="Files", label_schema={"flags": []})
    db.add(project)
    db.commit()
    return project


def hh(prompt: str, chosen: str, rejected: str) -> str:
    base = f"\n\nHuman: {prompt}"
    return json.dumps(
        {
            "chosen": f"{base}\n\nAssistant: {chosen}",
            "rejected": f"{base}\n\nAssistant: {rejected}",
        },
        ensure_ascii=False,
    )


GOOD_HH = [hh("Hi", "Hello!", "Go away."), hh("2+2?", "4", "5")]


def jsonl(*lines: str) -> bytes:
    return "\n".join(lines).encode() + b"\n"


def oasst_rows(missing_parent: bool) -> bytes:
    rows: list[dict[str, Any]] = [
        {
            "message_id": "p1",
            "parent_id": None,
            "role": "prompter",
            "text": "Q",
            "message_tree_id": "t1",
        },
        {
            "message_id": "a1",
            "parent_id": "p1",
            "role": "assistant",
            "text": "A",
            "rank": 0,
            "message_tree_id": "t1",
        },
        {
            "message_id": "a2",
            "parent_id": "p404" if missing_parent else "p1",
            "role": "assistant",
            "text": "B",
            "rank": 1,
            "message_tree_id": "t1",
        },
    ]
    return jsonl(*(json.dumps(row) for row in rows))


BAD_INPUTS = {
    "truncated JSONL line": (
        "hh.jsonl",
        jsonl(*GOOD_HH, '{"chosen": "\\n\\nHuman: Hi'),
        ImportRowError(
            line=3,
            reason="invalid JSON: Unterminated string starting at column 12 (a truncated line?)",
        ),
    ),
    "Latin-1 bytes": (
        "hh.jsonl",
        jsonl(*GOOD_HH) + hh("Café?", "Oui", "Non").encode("latin-1") + b"\n",
        ImportRowError(
            line=3,
            reason="not UTF-8: byte 0xe9 at column 27 (the file must be UTF-8, e.g. not Latin-1)",
        ),
    ),
    "an empty response": (
        "hh.jsonl",
        jsonl(*GOOD_HH, hh("Hi", "Hello", "")),
        ImportRowError(line=3, reason="the rejected response is empty"),
    ),
    "a ranking that names a missing response": (
        "oasst.jsonl",
        oasst_rows(missing_parent=True),
        ImportRowError(line=3, reason="message 'a2' replies to 'p404', which is not in tree 't1'"),
    ),
    "HH-RLHF transcripts without a shared prefix": (
        "hh.jsonl",
        jsonl(
            *GOOD_HH,
            json.dumps(
                {
                    "chosen": "\n\nHuman: A\n\nAssistant: x",
                    "rejected": "\n\nHuman: B\n\nAssistant: y",
                }
            ),
        ),
        ImportRowError(line=3, reason="the two transcripts do not share a prompt"),
    ),
    "a 50 MB single field": (
        "pairs.csv",
        b'prompt,chosen,rejected\nHi,Hello,Bye\nQ,"' + b"x" * (50 * MB) + b'",B\n',
        ImportRowError(line=3, reason="the row is 50.0 MB, over the limit of 10.0 MB for one row"),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_row_stops_the_import_with_nothing_stored(db: Session, case: str) -> None:
    project = make_project(db)
    name, data, error = BAD_INPUTS[case]
    before = db_state(db, TABLES)

    result = import_stream(db, project.id, io.BytesIO(data), name, on_error="stop", acting=None)

    assert (result.stopped, result.stop_error) == (True, error)
    assert (result.records_imported, result.prompts_created, result.comparisons) == (0, 0, 0)
    assert db_state(db, TABLES) == before


@pytest.mark.parametrize(
    "case", [c for c in BAD_INPUTS if c != "a ranking that names a missing response"]
)
def test_skip_mode_imports_the_good_rows_and_counts_the_bad(db: Session, case: str) -> None:
    project = make_project(db)
    name, data, error = BAD_INPUTS[case]

    result = import_stream(db, project.id, io.BytesIO(data), name, on_error="skip", acting=None)

    good = 1 if name.endswith(".csv") else 2
    assert result.model_dump(
        include={
            "rows_read",
            "records_imported",
            "skipped",
            "errors",
            "stopped",
            "comparisons",
            "pairs",
            "responses",
        }
    ) == {
        "rows_read": good + 1,
        "records_imported": good,
        "skipped": 1,
        "errors": [error.model_dump()],
        "stopped": False,
        "comparisons": good,
        "pairs": good,
        "responses": 2 * good,
    }
    assert len(db_state(db, ("comparisons",))["comparisons"]) == good


def test_an_oasst_export_imports_comparisons_and_demonstrations(db: Session) -> None:
    project = make_project(db)

    result = import_stream(
        db,
        project.id,
        io.BytesIO(oasst_rows(missing_parent=False)),
        "oasst.jsonl",
        on_error="stop",
        acting=None,
    )

    assert result == ImportResult(
        source="oasst.jsonl",
        format="oasst",
        rows_read=3,
        records_imported=1,
        rows_imported=3,
        prompts_created=1,
        responses=2,
        demonstrations=1,
        comparisons=1,
        pairs=1,
    )


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "hh.jsonl",
            '{"chosen": "a"}\n'.encode("utf-16"),
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8",
        ),
        (
            "pairs.csv",
            b"prompt,chosen\nHi,Hello\n",
            "could not recognise the format from the columns prompt, chosen; name one of oasst, "
            "hh-rlhf, preference, ultrafeedback, sft, prompts, dialogue",
        ),
        (
            "data.xml",
            b"<rows/>",
            "cannot read 'data.xml': use a file ending in .jsonl, .ndjson, .csv, .parquet, .txt",
        ),
    ],
)
def test_whole_file_problems_are_refused_before_anything_is_stored(
    db: Session, name: str, data: bytes, message: str
) -> None:
    project = make_project(db)
    before = db_state(db, TABLES)

    with pytest.raises(InvalidInput) as caught:
        import_stream(db, project.id, io.BytesIO(data), name, on_error="skip", acting=None)

    assert caught.value.message == message
    assert db_state(db, TABLES) == before


def test_a_csv_missing_a_column_of_the_named_format(db: Session) -> None:
    project = make_project(db)
    before = db_state(db, TABLES)

    with pytest.raises(InvalidInput) as caught:
        import_stream(
            db,
            project.id,
            io.BytesIO(b"prompt,chosen\nHi,Hello\n"),
            "pairs.csv",
            format="preference",
            on_error="skip",
            acting=None,
        )

    assert caught.value.message == (
        "the file has no column 'rejected' that the preference format needs (it needs chosen, "
        "rejected; the file has prompt, chosen)"
    )
    assert db_state(db, TABLES) == before


def test_dialogue_text_from_the_import_folder_reports_its_filters(
    db: Session, tmp_path: Path
) -> None:
    project = make_project(db)
    (tmp_path / "chats").mkdir()
    (tmp_path / "chats" / "gopher.txt").write_text(
        "[A]: Hi\n[B]: Hello\n\n[A]: Only me\n\n[A]: Q\n[B]: " + "y" * 50 + "\n"
    )

    result = import_file(
        db,
        project.id,
        tmp_path,
        "chats/gopher.txt",
        on_error="stop",
        acting=None,
        dialogue_filters=DialogueFilters(max_turn_chars=20),
    )

    assert result == ImportResult(
        source="gopher.txt",
        format="dialogue",
        rows_read=3,
        records_imported=1,
        rows_imported=1,
        prompts_created=1,
        responses=1,
        demonstrations=1,
        filters=DialogueFilterReport(
            dialogues=3,
            kept=1,
            dropped={
                "text_outside_turns": 0,
                "unknown_speaker": 0,
                "empty_turn": 0,
                "too_few_turns": 1,
                "turn_too_long": 1,
                "not_alternating": 0,
                "one_speaker": 0,
            },
        ),
    )


# --- the import folder ------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    inside = tmp_path / "imports"
    (inside / "sub").mkdir(parents=True)
    (inside / "sub" / "data.jsonl").write_text("{}\n")
    (tmp_path / "secret.jsonl").write_text("{}\n")
    os.symlink(tmp_path / "secret.jsonl", inside / "escape.jsonl")
    os.symlink(tmp_path, inside / "up")
    os.symlink(inside / "sub" / "data.jsonl", inside / "alias.jsonl")
    return inside


def test_names_inside_the_folder_resolve(folder: Path) -> None:
    assert resolve_import_path(folder, "sub/data.jsonl") == folder / "sub" / "data.jsonl"
    # A symlink that stays inside the folder is fine.
    assert resolve_import_path(folder, "alias.jsonl") == folder / "sub" / "data.jsonl"
    assert resolve_import_path(folder, "./sub/data.jsonl") == folder / "sub" / "data.jsonl"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/etc/passwd", "'/etc/passwd' is an absolute path; name a file inside the import folder"),
        (
            "C:\\data.jsonl",
            "'C:\\\\data.jsonl' is an absolute path; name a file inside the import folder",
        ),
        (
            "../secret.jsonl",
            "'../secret.jsonl' goes up a folder ('..'); name a file inside the import folder",
        ),
        (
            "sub/../../secret.jsonl",
            "'sub/../../secret.jsonl' goes up a folder ('..'); name a "
            "file inside the import folder",
        ),
        (
            "sub\\..\\..\\secret.jsonl",
            "'sub\\\\..\\\\..\\\\secret.jsonl' goes up a folder "
            "('..'); name a file inside the import folder",
        ),
        ("escape.jsonl", "'escape.jsonl' leads outside the import folder (a symlink?)"),
        ("up/secret.jsonl", "'up/secret.jsonl' leads outside the import folder (a symlink?)"),
        ("sub", "'sub' is not a file"),
        ("nothing.jsonl", "there is no 'nothing.jsonl' in the import folder"),
        ("", "name a file in the import folder"),
        ("a\x00b", "name a file in the import folder"),
    ],
)
def test_names_that_would_leave_the_folder_are_refused(
    folder: Path, name: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_import_path(folder, name)
    assert caught.value.message == message
    assert caught.value.field == "name"


def test_a_missing_import_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve_import_path(tmp_path / "none", "a.jsonl")
    assert caught.value.message == f"the import folder {str(tmp_path / 'none')!r} does not exist"
