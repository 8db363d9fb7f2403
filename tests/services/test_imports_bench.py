"""bench/import_hh.py at a small size: it runs end to end and its figures add up."""

from __future__ import annotations

import json
from pathlib import Path

from bench import import_hh


def test_a_small_run_on_sqlite(tmp_path: Path) -> None:
    import_hh.main(["--rows", "500", "--out", str(tmp_path), "--note", "test"])

    saved = json.loads((tmp_path / "import_hh.json").read_text())
    assert set(saved) == {"sqlite"}
    result = saved["sqlite"]
    assert (result["note"], result["rows"]) == ("test", 500)
    assert result["rows_per_second"] > 0
    assert 0 < result["rss_before_mb"] <= result["peak_rss_mb"]
    # Row 10k reuses row k's prompt (k = 1..49), except where row k is itself a repeater
    # (k = 10, 20, 30, 40): those four topics are new.
    assert result["result"] == {
        "source": "hh-rlhf.jsonl",
        "format": "hh-rlhf",
        "rows_read": 500,
        "records_imported": 500,
        "prompts_created": 455,
        "prompts_reused": 45,
        "responses": 1000,
        "demonstrations": 0,
        "comparisons": 500,
        "pairs": 500,
        "responses_merged": 0,
        "rows_imported": 500,
        "rows_merged": 0,
        "rows_warned": 0,
        "skipped": 0,
        "skipped_deleted": 0,
        "stopped": False,
    }
    assert result["stored"] == {"prompts": 455, "responses": 1000, "comparisons": 500, "pairs": 500}
