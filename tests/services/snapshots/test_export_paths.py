"""The fast paths of the labeler-pairs export: inline id lists, the paused collector, prompts
encoded once and kept for the next chunk, SQLite's join plan, and the writer's thread."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Pair, Prompt
from app.schemas.snapshots import SnapshotFilters
from app.services.snapshots import pairs
from app.services.snapshots.formats import (
    PROMPTS,
    Chunk,
    chunk_from_rows,
    in_test,
    splitter,
)
from app.services.snapshots.rawsql import gc_paused, ids_in, raw_batches
from app.services.snapshots.writers import SnapshotWriter
from app.settings import Settings
from tests.factories import make_project, make_prompt
from tests.services.snapshots.conftest import World
from tests.services.snapshots.helpers import lines, snapshot


def test_ids_in_selects_exactly_the_ids(db: Session, world: World) -> None:
    p1, _, p3 = world.prompts
    query = select(Prompt.id).where(ids_in(Prompt.id, np.array([p3.id, p1.id])))

    found = [row[0] for rows in raw_batches(db, query.order_by(Prompt.id), 10, "t") for row in rows]

    assert found == [p1.id, p3.id]
    assert f"IN ({p3.id},{p1.id})" in str(query.compile(db.get_bind()))


def test_ids_in_takes_only_a_non_empty_integer_array() -> None:
    with pytest.raises(TypeError, match="integer array"):
        ids_in(Prompt.id, np.array([1.5]))
    with pytest.raises(TypeError, match="integer array"):
        ids_in(Prompt.id, np.array(["1) OR (1=1"]))
    with pytest.raises(ValueError, match="at least one id"):
        ids_in(Prompt.id, np.array([], dtype=np.int64))


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()

    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()

    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "plain"}],
        [{"content": "keys the other way", "role": "user", "extra": 1}],
        [
            {"role": "system", "content": 'quotes " and \\ backslash, tab\t, nul \u0000'},
            {"role": "user", "content": "é, 日本語, emoji \U0001f600, line\nbreak"},
            {"role": "assistant", "content": "\u2028 separators \u2029"},
        ],
        [],
        [{"role": "user", "content": None}],
        [{"role": 7, "content": "a number for a role"}],
    ],
)
def test_a_prompt_is_encoded_as_json_dumps_encodes_it(messages: list[dict[str, Any]]) -> None:
    filters = SnapshotFilters(seed=3, test_fraction=0.5)

    split = splitter(filters.seed, filters.test_fraction)

    found = pairs._prompt_text(json.dumps(messages), "abc", split)

    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    assert found.json == json.dumps(turns, ensure_ascii=False, separators=(",", ":"))
    assert found.roles == [m["role"] for m in messages]
    assert found.contents == [m["content"] for m in messages]
    assert found.test == in_test(3, "abc", 0.5)


@pytest.mark.parametrize("content_hash", ["", "a", "hash-Prompt one-1", "f" * 64])
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 1.0])
def test_the_split_is_the_one_the_hex_digest_gave(content_hash: str, fraction: float) -> None:
    for seed in range(20):
        digest = hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()
        expected = int(digest, 16) / 2**256 < fraction
        assert in_test(seed, content_hash, fraction) == expected
        assert splitter(seed, fraction)(content_hash) == expected


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the queries the pairs export runs through raw_batches, in order."""
    names: list[str] = []
    original = pairs.raw_batches

    def spy(db: Session, query: Any, size: int, name: str) -> Iterator[list[Any]]:
        names.append(name)
        return original(db, query, size, name)

    monkeypatch.setattr(pairs, "raw_batches", spy)
    return names


def test_chunks_of_one_pair_write_the_same_rows_and_keep_what_they_read(
    db: Session,
    settings: Settings,
    world: World,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = snapshot(db, settings, world, "preference", "pairs", name="Whole", test_fraction=0.5)
    expected = {split: lines(settings, whole.path, split) for split in ("train", "test")}
    reads.clear()

    monkeypatch.setattr(pairs, "BATCH", 1)
    one_by_one = snapshot(db, settings, world, "preference", "pairs", test_fraction=0.5)

    for split in ("train", "test"):
        assert lines(settings, one_by_one.path, split) == expected[split]
        train = settings.data_dir / one_by_one.path / f"{split}.jsonl"
        assert (
            train.read_bytes() == (settings.data_dir / whole.path / f"{split}.jsonl").read_bytes()
        )
    assert one_by_one.content_hash == whole.content_hash
    assert one_by_one.row_counts == whole.row_counts
    parquet = pq.ParquetFile(settings.data_dir / one_by_one.path / "train.parquet")
    assert parquet.metadata.num_row_groups == one_by_one.row_counts["train"]

    # A chunk reads only the prompts and responses the chunk before did not.
    ordered = sorted(world.pairs, key=lambda found: found.id)
    prompt_reads = response_reads = 0
    previous_prompt: int | None = None
    previous_responses: set[int] = set()
    for found in ordered:
        responses = {found.winner_response_id, found.loser_response_id}
        prompt_reads += found.prompt_id != previous_prompt
        response_reads += not responses <= previous_responses
        previous_prompt, previous_responses = found.prompt_id, responses
    assert reads.count("snapshot_pairs") == 1
    assert reads.count("snapshot_prompts") == prompt_reads
    assert reads.count("snapshot_responses") == response_reads
    assert prompt_reads < len(ordered)  # the test world has pairs sharing a prompt in a row


def test_sqlite_reads_pairs_in_id_order_when_the_project_has_most_prompts(
    db: Session, world: World
) -> None:
    join = pairs._prompt_of_pair(db, world.project.id)
    if db.get_bind().dialect.name != "sqlite":
        # PostgreSQL keeps statistics and plans by them.
        assert join is Pair.prompt_id
        return
    assert str(join) == "pairs.prompt_id + :prompt_id_1"

    other = make_project(db, "Bigger")
    for index in range(4):
        make_prompt(db, other, f"Other {index}")
    assert pairs._prompt_of_pair(db, world.project.id) is Pair.prompt_id
    assert str(pairs._prompt_of_pair(db, other.id)) == "pairs.prompt_id + :prompt_id_1"


def prompt_chunk(first: int, count: int, test: list[bool]) -> Chunk:
    rows = [
        {"prompt": [{"role": "user", "content": f"Prompt {n}"}], "prompt_id": n}
        for n in range(first, first + count)
    ]
    return chunk_from_rows(rows, PROMPTS, test)


def test_lines_left_for_the_writer_are_written_as_given_lines(tmp_path: Path) -> None:
    eager = prompt_chunk(1, 4, [False, True, False, False])
    deferred = Chunk(eager.table, lambda: eager.lines, eager.test)
    (tmp_path / "eager").mkdir()
    (tmp_path / "deferred").mkdir()

    with SnapshotWriter(tmp_path / "eager", PROMPTS) as writer:
        writer.write(eager)
    with SnapshotWriter(tmp_path / "deferred", PROMPTS) as writer:
        writer.write(deferred)

    for name in ("train.jsonl", "test.jsonl", "train.parquet", "test.parquet"):
        assert (tmp_path / "deferred" / name).read_bytes() == (
            tmp_path / "eager" / name
        ).read_bytes()
    assert (tmp_path / "deferred" / "train.jsonl").read_text(encoding="utf-8").splitlines() == [
        '{"prompt":[{"role":"user","content":"Prompt 1"}],"prompt_id":1}',
        '{"prompt":[{"role":"user","content":"Prompt 3"}],"prompt_id":3}',
        '{"prompt":[{"role":"user","content":"Prompt 4"}],"prompt_id":4}',
    ]
    assert writer.row_counts == {"train": 3, "test": 1}


def failing_chunk() -> Chunk:
    good = prompt_chunk(1, 2, [False, False])

    def broken() -> pa.Array:
        raise OSError("disk full")

    return Chunk(good.table, broken, good.test)


def test_a_failed_write_is_raised_by_the_next_write(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, PROMPTS)
    writer.write(failing_chunk())

    with pytest.raises(OSError, match="disk full"):
        writer.write(prompt_chunk(3, 1, [False]))
    writer.__exit__(None, None, None)  # nothing in flight any more: closes cleanly

    assert (tmp_path / "train.jsonl").read_bytes() == b""
    assert writer.row_counts == {"train": 0, "test": 0}


def test_a_failed_last_write_is_raised_on_leaving(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="disk full"), SnapshotWriter(tmp_path, PROMPTS) as writer:
        writer.write(prompt_chunk(1, 2, [False, False]))
        writer.write(failing_chunk())

    assert len((tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert writer.row_counts == {"train": 2, "test": 0}


def test_an_error_while_writing_is_kept_over_the_chunk_in_flight(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="the caller's"), SnapshotWriter(tmp_path, PROMPTS) as w:
        w.write(failing_chunk())
        raise KeyError("the caller's")
