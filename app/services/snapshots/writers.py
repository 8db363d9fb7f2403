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

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterable
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
        self._jsonl.close()
        self._parquet.close()
        self._arrow.close()
        self._arrow_sink.close()


class SnapshotWriter:
    """train and test writers over one folder; a chunk's rows go where its `test` says."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.folder = folder
        self.schema = schema
        self._splits = {split: SplitWriter(folder, split, schema) for split in SPLITS}

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for writer in self._splits.values():
            writer.close()

    def write(self, chunk: Chunk) -> None:
        if chunk.table.schema != self.schema:
            raise ValueError("a chunk's schema differs from the snapshot's")
        if not chunk.test.any():
            self._splits["train"].write(chunk.table, chunk.lines)
            return
        if chunk.test.all():
            self._splits["test"].write(chunk.table, chunk.lines)
            return
        test = pa.array(chunk.test, pa.bool_())
        train = pc.invert(test)
        self._splits["train"].write(chunk.table.filter(train), chunk.lines.filter(train))
        self._splits["test"].write(chunk.table.filter(test), chunk.lines.filter(test))

    def write_all(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self.write(chunk)

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
