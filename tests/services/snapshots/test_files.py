"""Snapshot files: layout, read-only, JSONL = Parquet = datasets folder, split, hashing,
all-or-nothing writing, immutability."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput
from app.models import Snapshot
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services.snapshots import (
    get_snapshot,
    list_snapshots,
    preview_rows,
    service,
    supersede_snapshot,
)
from app.services.snapshots.writers import SplitWriter
from app.settings import Settings
from tests.services.snapshots.conftest import World
from tests.services.snapshots.helpers import lines, snapshot

FILES = {
    "snapshot.json",
    "train.jsonl",
    "test.jsonl",
    "train.parquet",
    "test.parquet",
    "datasets/dataset_dict.json",
    "datasets/train/data-00000-of-00001.arrow",
    "datasets/train/state.json",
    "datasets/train/dataset_info.json",
    "datasets/test/data-00000-of-00001.arrow",
    "datasets/test/state.json",
    "datasets/test/dataset_info.json",
}


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_files_are_complete_read_only_and_agree(
    db: Session, settings: Settings, world: World
) -> None:
    made = snapshot(
        db, settings, world, "preference", "pairs", name="Pairs: v1!", test_fraction=0.5
    )

    folder = settings.data_dir / made.path
    assert made.path == f"snapshots/{made.id}-pairs-v1"
    assert files_under(folder) == FILES
    assert [p.name for p in (settings.data_dir / "snapshots").iterdir()] == [folder.name]
    for name in FILES:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o444
    for split in ("train", "test"):
        rows = lines(settings, made.path, split)
        assert len(rows) == made.row_counts[split]
        assert pq.read_table(folder / f"{split}.parquet").to_pylist() == rows
        arrow = folder / "datasets" / split / "data-00000-of-00001.arrow"
        with pa.OSFile(str(arrow)) as source:
            assert pa.ipc.open_stream(source).read_all().to_pylist() == rows
        state = json.loads((folder / "datasets" / split / "state.json").read_text())
        assert state["_split"] == split
        # Canonical JSON: exactly what the row re-encodes to.
        for line in (folder / f"{split}.jsonl").read_text().splitlines():
            assert line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":"))
    assert made.row_counts["train"] + made.row_counts["test"] == 6

    manifest = json.loads((folder / "snapshot.json").read_text())
    assert manifest["id"] == made.id
    assert manifest["kind"] == "preference"
    assert manifest["filters"] == made.filters
    assert manifest["filters"]["test_fraction"] == 0.5
    assert manifest["row_counts"] == made.row_counts
    assert manifest["content_hash"] == made.content_hash
    assert manifest["created_by"] == "rita"
    assert manifest["created_at"] == made.created_at.isoformat()
    expected = hashlib.sha256(
        (folder / "train.jsonl").read_bytes() + (folder / "test.jsonl").read_bytes()
    ).hexdigest()
    assert made.content_hash == expected


def test_datasets_load_from_disk(db: Session, settings: Settings, world: World) -> None:
    datasets = pytest.importorskip(
        "datasets", reason="the `datasets` library (train extra) is not installed"
    )
    made = snapshot(db, settings, world, "preference", "pairs", test_fraction=0.5)
    loaded = datasets.load_from_disk(str(settings.data_dir / made.path / "datasets"))
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        assert loaded[split].to_list() == lines(settings, made.path, split)
    assert loaded["train"].column_names[:3] == ["prompt", "chosen", "rejected"]


def expected_test(seed: int, prompt_hash: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{prompt_hash}".encode()).hexdigest()
    return int(digest, 16) / 2**256 < fraction


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_by_prompt_is_deterministic_and_disjoint(
    db: Session, settings: Settings, world: World, seed: int
) -> None:
    first = snapshot(db, settings, world, "preference", "pairs", seed=seed, test_fraction=0.5)
    again = snapshot(db, settings, world, "preference", "pairs", seed=seed, test_fraction=0.5)

    hashes = {prompt.id: prompt.content_hash for prompt in world.prompts}
    train = {row["prompt_id"] for row in lines(settings, first.path, "train")}
    test = {row["prompt_id"] for row in lines(settings, first.path, "test")}
    assert not train & test
    for prompt_id in train | test:
        assert (prompt_id in test) is expected_test(seed, hashes[prompt_id], 0.5)
    assert again.content_hash == first.content_hash
    assert again.row_counts == first.row_counts


def test_content_hash_follows_the_data(db: Session, settings: Settings, world: World) -> None:
    first = snapshot(db, settings, world, "preference", "pairs", name="one", margin="score_gap")
    same = snapshot(db, settings, world, "preference", "pairs", name="two", margin="score_gap")
    assert same.content_hash == first.content_hash
    assert same.path != first.path

    world.pairs[0].margin = 1.5
    db.commit()
    changed = snapshot(db, settings, world, "preference", "pairs", name="three", margin="score_gap")
    assert changed.content_hash != first.content_hash
    assert lines(settings, changed.path)[0]["margin"] == 1.5


def nothing_left(db: Session, settings: Settings) -> None:
    assert db.scalar(select(func.count()).select_from(Snapshot)) == 0
    assert list((settings.data_dir / "snapshots").iterdir()) == []


def test_a_failure_while_writing_leaves_nothing(
    db: Session, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = SplitWriter.write

    def fail_on_second(self: SplitWriter, table: pa.Table, lines_: list[str]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        original(self, table, lines_)

    monkeypatch.setattr(SplitWriter, "write", fail_on_second)
    # All rows to train: the first write lands, the second (of the consensus' chunks) fails.
    monkeypatch.setattr("app.services.snapshots.preference.TASK_BATCH", 1)
    with pytest.raises(OSError, match="disk full"):
        snapshot(db, settings, world, "preference", "consensus")
    assert calls["n"] == 2
    nothing_left(db, settings)


def test_a_failure_after_the_row_is_made_leaves_nothing(
    db: Session, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(folder: Path) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(service, "seal", broken)
    with pytest.raises(OSError, match="read-only file system"):
        snapshot(db, settings, world, "sft")
    nothing_left(db, settings)


def test_supersede_list_get_and_preview(db: Session, settings: Settings, world: World) -> None:
    old = snapshot(db, settings, world, "prompts", name="all prompts")
    data = SnapshotCreate(
        name="no gold",
        kind="prompts",
        filters=SnapshotFilters(exclude_gold=True, test_fraction=0),
    )
    new = supersede_snapshot(db, settings, old.id, data, world.researcher)

    assert get_snapshot(db, old.id).superseded_by_id == new.id
    assert new.superseded_by_id is None
    assert [found.id for found in list_snapshots(db, world.project.id)] == [new.id, old.id]
    manifest = json.loads((settings.data_dir / new.path / "snapshot.json").read_text())
    assert manifest["supersedes_id"] == old.id
    assert preview_rows(settings, new, "train", limit=1) == lines(settings, new.path)[:1]
    assert preview_rows(settings, new, "train") == lines(settings, new.path)
    assert preview_rows(settings, new, "test") == []

    with pytest.raises(Conflict):
        supersede_snapshot(db, settings, old.id, data, world.researcher)
    wrong_kind = SnapshotCreate(name="x", kind="sft", filters=SnapshotFilters())
    with pytest.raises(InvalidInput):
        supersede_snapshot(db, settings, new.id, wrong_kind, world.researcher)
    with pytest.raises(InvalidInput):
        preview_rows(settings, new, "validation")
    with pytest.raises(InvalidInput):
        preview_rows(settings, new, "train", limit=0)
    assert db.scalar(select(func.count()).select_from(Snapshot)) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {"name": " ", "kind": "sft"},
        {"name": "x", "kind": "sft", "source": "pairs"},
        {"name": "x", "kind": "preference", "source": "votes"},
        {"name": "x", "kind": "sft", "filters": {"test_fraction": 1.5}},
        {"name": "x", "kind": "sft", "filters": {"created_from": "2024-01-01T00:00:00"}},
        {
            "name": "x",
            "kind": "sft",
            "filters": {
                "created_from": "2024-02-01T00:00:00Z",
                "created_to": "2024-01-01T00:00:00Z",
            },
        },
        {"name": "x", "kind": "sft", "filters": {"unknown": 1}},
    ],
)
def test_bad_requests_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SnapshotCreate.model_validate(payload)
