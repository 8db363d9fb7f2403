"""Progress while a snapshot is written: the rows written so far, after every chunk (what a
background job shows), for create_snapshot and supersede_snapshot alike."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.snapshots import create_snapshot, supersede_snapshot
from app.services.snapshots.formats import PROMPTS, chunk_from_rows
from app.services.snapshots.writers import SnapshotWriter
from app.settings import Settings
from tests.services.snapshots.conftest import World


def prompt_rows(first: int, count: int) -> list[dict[str, object]]:
    return [
        {"prompt": [{"role": "user", "content": f"Prompt {index}"}], "prompt_id": index}
        for index in range(first, first + count)
    ]


def test_the_writer_reports_the_rows_written_after_each_chunk(tmp_path: Path) -> None:
    chunks = [
        chunk_from_rows(prompt_rows(1, 3), PROMPTS, [False, True, False]),
        chunk_from_rows(prompt_rows(4, 0), PROMPTS, []),
        chunk_from_rows(prompt_rows(4, 5), PROMPTS, [True] * 5),
    ]
    heard: list[int] = []

    with SnapshotWriter(tmp_path, PROMPTS) as writer:
        writer.write_all(chunks, heard.append)

    assert heard == [3, 3, 8]
    assert writer.row_counts == {"train": 2, "test": 6}


def test_create_and_supersede_report_every_row(
    db: Session, settings: Settings, world: World
) -> None:
    heard: list[int] = []
    data = SnapshotCreate(
        name="Pairs", kind="preference", filters=SnapshotFilters(test_fraction=0.5)
    )

    first = create_snapshot(
        db, settings, world.project.id, data, world.researcher, progress=heard.append
    )

    assert heard == [6]
    assert sum(first.row_counts.values()) == 6

    heard.clear()
    only_ann = data.model_copy(update={"filters": SnapshotFilters(labeler_ids=[world.ann.id])})
    second = supersede_snapshot(
        db, settings, first.id, only_ann, world.researcher, progress=heard.append
    )

    assert heard == [3]
    assert sum(second.row_counts.values()) == 3
    assert first.superseded_by_id == second.id


def test_progress_is_optional(db: Session, settings: Settings, world: World) -> None:
    data = SnapshotCreate(name="Prompts", kind="prompts")

    snapshot = create_snapshot(db, settings, world.project.id, data, world.researcher)

    assert sum(snapshot.row_counts.values()) == 3
