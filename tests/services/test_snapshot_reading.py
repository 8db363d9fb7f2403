"""Reading a preference snapshot's rows back for a judge or critique run
(app/services/snapshots/reading.py): train then test, and every refusal on snapshot_id."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import SnapshotKind
from app.services.snapshots.reading import preference_rows
from app.settings import Settings
from tests.factories import make_project
from tests.training_factories import make_snapshot

NEEDED_BY = "a judge needs a preference snapshot"


def write(settings: Settings, path: str, split: str, rows: list[dict[str, int]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (settings.data_dir / path / f"{split}.jsonl").write_text(text + "\n")  # a blank last line


def test_rows_of_both_splits_in_order(db: Session, settings: Settings) -> None:
    project = make_project(db)
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    write(settings, snapshot.path, "train", [{"prompt_id": 1}, {"prompt_id": 2}])
    write(settings, snapshot.path, "test", [{"prompt_id": 3}])
    rows = preference_rows(db, settings, project.id, snapshot.id, needed_by=NEEDED_BY)
    assert [row["prompt_id"] for row in rows] == [1, 2, 3]


def test_every_bad_snapshot_is_refused_by_name(db: Session, settings: Settings) -> None:
    project, other = make_project(db), make_project(db, "Other")
    sft = make_snapshot(db, settings, project, SnapshotKind.sft)
    theirs = make_snapshot(db, settings, other, SnapshotKind.preference)
    half = make_snapshot(db, settings, project, SnapshotKind.preference)
    write(settings, half.path, "train", [{"prompt_id": 1}])
    cases = [
        (10**12, f"no snapshot with id {10**12} in project {project.id}"),
        (theirs.id, f"no snapshot with id {theirs.id} in project {project.id}"),
        (sft.id, f"snapshot {sft.id} is a sft snapshot; {NEEDED_BY}"),
        (half.id, f"snapshot {half.id}'s test file is missing from the data folder"),
    ]
    for snapshot_id, message in cases:
        with pytest.raises(InvalidInput) as refused:
            list(preference_rows(db, settings, project.id, snapshot_id, needed_by=NEEDED_BY))
        assert (str(refused.value), refused.value.field) == (message, "snapshot_id")
