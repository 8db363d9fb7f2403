"""bench/export_pairs.py at a small size: it runs end to end and reports sane figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench import export_pairs


def test_a_small_run(tmp_path: Path) -> None:
    export_pairs.main(["--pairs", "600", "--out", str(tmp_path), "--note", "test"])

    saved = json.loads((tmp_path / "export_pairs.json").read_text())
    assert saved["note"] == "test"
    assert saved["shape"] == {"tasks": 100, "comparisons": 200, "pairs": 600}
    export = saved["export"]
    assert export["rows"] == 600
    assert export["row_counts"]["train"] + export["row_counts"]["test"] == 600
    assert export["rows_per_second"] > 0
    assert 0 < export["rss_before_mb"] <= export["peak_rss_mb"]
    assert set(export["file_bytes"]) == {
        "snapshot.json",
        "train.jsonl",
        "test.jsonl",
        "train.parquet",
        "test.parquet",
    }
