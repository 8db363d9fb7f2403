"""The column-wise pieces of the labeler-pairs export write what json.dumps would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from app.services.snapshots.formats import PROMPTS, chunk_from_rows
from app.services.snapshots.pairs import _float_text
from app.services.snapshots.writers import SnapshotWriter


def test_floats_are_written_as_json_dumps_writes_them() -> None:
    values = [2.0, None, -0.0, 0.0, 0.1 + 0.2, 2.0, 1e-20, 123456789.125]

    found = _float_text(pa.array(values, pa.float64())).to_pylist()

    assert found == [json.dumps(value) for value in values]
    assert _float_text(pa.array([], pa.float64())).to_pylist() == []


def test_a_chunk_split_between_train_and_test_writes_each_line_once(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"é {n}"}], "prompt_id": n} for n in range(5)]
    chunk = chunk_from_rows(rows, PROMPTS, [False, True, False, True, False])
    sliced = chunk_from_rows(rows, PROMPTS, [True] * 5)

    with SnapshotWriter(tmp_path, PROMPTS) as writer:
        writer.write(chunk)
        # A slice of the lines (a non-zero offset into its buffers) writes only its own text.
        writer.write(type(sliced)(sliced.table.slice(3), sliced.lines.slice(3), np.ones(2, bool)))

    train = (tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    test = (tmp_path / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["prompt_id"] for line in train] == [0, 2, 4]
    assert [json.loads(line)["prompt_id"] for line in test] == [1, 3, 3, 4]
    assert train[0] == '{"prompt":[{"role":"user","content":"é 0"}],"prompt_id":0}'
    assert writer.row_counts == {"train": 3, "test": 4}
