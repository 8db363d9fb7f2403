"""Reading back a preference snapshot's rows, for runs that take their inputs from one (judge
and critique runs): the snapshot checked to be this project's and of preference kind, then every
row of both splits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from app.errors import InvalidInput
from app.models import Snapshot, SnapshotKind
from app.services.prompts import storable_id
from app.settings import Settings


def preference_rows(
    db: Session, settings: Settings, project_id: int, snapshot_id: int, *, needed_by: str
) -> Iterator[dict[str, Any]]:
    """The rows of the project's preference snapshot `snapshot_id`, train then test; refused
    (InvalidInput on snapshot_id) when it is missing, another project's, of another kind
    (`needed_by` says who needed a preference snapshot: "a judge needs") or has lost a file."""
    snapshot = db.get(Snapshot, snapshot_id) if storable_id(snapshot_id) else None
    if snapshot is None or snapshot.project_id != project_id:
        raise InvalidInput(
            f"no snapshot with id {snapshot_id} in project {project_id}", field="snapshot_id"
        )
    if snapshot.kind != SnapshotKind.preference:
        raise InvalidInput(
            f"snapshot {snapshot.id} is a {snapshot.kind.value} snapshot; {needed_by}",
            field="snapshot_id",
        )
    paths = [settings.data_dir / snapshot.path / f"{split}.jsonl" for split in ("train", "test")]
    for split, path in zip(("train", "test"), paths, strict=True):
        # Both checked before any row is read: a half-read snapshot would launch half a run.
        if not path.is_file():
            raise InvalidInput(
                f"snapshot {snapshot.id}'s {split} file is missing from the data folder",
                field="snapshot_id",
            )
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
