"""Writing rows to a snapshot folder as they come: JSONL lines, Parquet row groups and the
Arrow stream of a `datasets` folder, never holding all rows at once.

The `datasets` folder is written with pyarrow alone, in the layout `Dataset.save_to_disk`
produces and `datasets.load_from_disk` reads (datasets 2.x to 5.x): `dataset_dict.json`
naming the splits, and per split an Arrow IPC stream `data-00000-of-00001.arrow`,
`state.json` and `dataset_info.json`. The info carries no `features`: datasets then reads
them from the Arrow schema, so the folder does not depend on how a datasets version spells
its feature types, and the web app never needs the library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from app.services.snapshots.formats import Chunk

SPLITS = ("train", "test")
ARROW_FILE = "data-00000-of-00001.arrow"
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
HASH_BLOCK = 1 << 20


class SplitWriter:
    """One split's three files, appended to chunk by chunk."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema) -> None:
        self.rows = 0
        self._jsonl = (folder / f"{split}.jsonl").open("wb")
        self._parquet = pq.ParquetWriter(folder / f"{split}.parquet", schema)
        arrow_folder = folder / "datasets" / split
        arrow_folder.mkdir(parents=True)
        self._arrow_sink = pa.OSFile(str(arrow_folder / ARROW_FILE), "wb")
        self._arrow = pa.ipc.new_stream(self._arrow_sink, schema)

    def write(self, table: pa.Table, lines: pa.Array) -> None:
        if table.num_rows == 0:
            return
        if len(lines) != table.num_rows:
            raise ValueError("a chunk has not one JSONL line per row")
        # The lines' data buffer is their text, one after another: written as it is.
        offsets = lines.buffers()[1]
        width = 8 if pa.types.is_large_string(lines.type) else 4
        ends = np.frombuffer(offsets, dtype=np.int64 if width == 8 else np.int32)
        start, end = int(ends[lines.offset]), int(ends[lines.offset + len(lines)])
        self._jsonl.write(memoryview(lines.buffers()[2])[start:end])
        self._parquet.write_table(table)
        self._arrow.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        _close_all(
            (self._jsonl.close, self._parquet.close, self._arrow.close, self._arrow_sink.close)
        )


def _close_all(closers: Iterable[Callable[[], object]]) -> None:
    """Calls every closer even when one fails, then raises the first failure. A full disk fails
    the flush on close; a handle left open would hold the space of the file deleted after it
    (the snapshot's cleanup) until the error's traceback was garbage-collected."""
    first: BaseException | None = None
    for close in closers:
        try:
            close()
        except Exception as error:
            first = first or error
    if first is not None:
        raise first


class SnapshotWriter:
    """train and test writers over one folder; a chunk's rows go where its `test` says.

    A chunk is written on a thread of its own while the caller makes the next one: the
    writing (splitting, Parquet encoding, the file writes) runs in Arrow's C++ with Python's
    lock released, so on two cores it costs the export almost no time. One chunk at most is
    in flight: `write` waits for the one before, and raises its error if it failed; leaving
    the `with` block waits for the last one."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.folder = folder
        self.schema = schema
        self._splits = {split: SplitWriter(folder, split, schema) for split in SPLITS}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-writer")
        self._pending: Future[None] | None = None

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self._wait()
            else:
                # Already failing: let the chunk in flight finish (its files are closed
                # next), but keep the error that got us here rather than a later one.
                with contextlib.suppress(Exception):
                    self._wait()
        finally:
            self._thread.shutdown(wait=True)
            _close_all(writer.close for writer in self._splits.values())

    def write(self, chunk: Chunk) -> None:
        if chunk.table.schema != self.schema:
            raise ValueError("a chunk's schema differs from the snapshot's")
        self._wait()
        self._pending = self._thread.submit(self._write, chunk)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, chunk: Chunk) -> None:
        lines = chunk.jsonl()
        if not chunk.test.any():
            self._splits["train"].write(chunk.table, lines)
            return
        if chunk.test.all():
            self._splits["test"].write(chunk.table, lines)
            return
        test = pa.array(chunk.test, pa.bool_())
        train = pc.invert(test)
        self._splits["train"].write(chunk.table.filter(train), lines.filter(train))
        self._splits["test"].write(chunk.table.filter(test), lines.filter(test))

    def write_all(
        self, chunks: Iterable[Chunk], progress: Callable[[int], None] | None = None
    ) -> None:
        """Every chunk; `progress` hears the rows written so far after each one."""
        written = 0
        for chunk in chunks:
            self.write(chunk)
            written += chunk.table.num_rows
            if progress is not None:
                progress(written)

    @property
    def row_counts(self) -> dict[str, int]:
        return {split: writer.rows for split, writer in self._splits.items()}


def finish_datasets_folder(folder: Path, fingerprint: str, description: str) -> None:
    """The JSON files that make `folder/datasets` a DatasetDict for `load_from_disk`."""
    datasets = folder / "datasets"
    _write_json(datasets / "dataset_dict.json", {"splits": list(SPLITS)})
    for split in SPLITS:
        state = {
            "_data_files": [{"filename": ARROW_FILE}],
            "_fingerprint": f"{fingerprint[:16]}-{split}",
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": split,
        }
        _write_json(datasets / split / "state.json", state)
        info = {"description": description, "citation": "", "homepage": "", "license": ""}
        _write_json(datasets / split / "dataset_info.json", info)


def content_hash(folder: Path) -> str:
    """sha256 over train.jsonl's bytes, then test.jsonl's."""
    digest = hashlib.sha256()
    for split in SPLITS:
        with (folder / f"{split}.jsonl").open("rb") as handle:
            while block := handle.read(HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    _write_json(folder / "snapshot.json", manifest)


def seal(folder: Path) -> None:
    """Every file read-only: a snapshot is never edited in place."""
    for root, _, files in os.walk(folder):
        for name in files:
            os.chmod(Path(root, name), READ_ONLY)


def remove(folder: Path) -> None:
    """A folder and its read-only files (files need no write bit to be unlinked)."""
    if folder.exists():
        shutil.rmtree(folder)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
