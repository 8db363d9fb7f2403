"""bench/data_browser.py at a small size: it builds, times every request, and its figures are
sane (each request answered the rows the data it built says it should)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import data_browser
from tests.conftest import POSTGRES_ADMIN_URL


def test_a_small_run_on_postgresql(tmp_path: Path) -> None:
    data_browser.main(
        [
            "--comparisons",
            "3000",
            "--repeat",
            "1",
            "--database-url",
            POSTGRES_ADMIN_URL,
            "--out",
            str(tmp_path),
        ]
    )

    result = json.loads((tmp_path / "data_browser.json").read_text())
    assert result["build"]["comparisons"] == 3000
    assert result["build"]["prompts"] == 1000
    requests = result["requests"]
    rows = {name: figures["rows"] for name, figures in requests.items()}
    assert rows == {
        "labels_first_page": 50,
        # Labeler 1001 judges every 200th comparison, flagged; their tasks are in queues
        # 4, 3 and 1 in turn, never 2.
        "labels_filtered": 5,
        "labels_filtered_none": 0,
        "labels_deep_keyset_page": 50,
        "labels_filtered_deep": 7,  # of the 15 below comparison 1500
        "labels_by_day": 33,  # 3000 over 90 days
        "labels_gold": 30,  # 10 gold tasks of 3 comparisons
        "labels_search_rare": 3,  # prompt 1000's three comparisons
        "labels_search_common": 50,
        "labels_search_every_prompt": 50,
        "labels_search_none": 0,
        "prompts_search_rare": 1,
        "prompts_search_common": 50,  # 90 of the 1,000 prompts
        "prompts_search_every_response": 50,
        "prompts_search_none": 0,
        "labels_agreement_below": 50,
        "labels_agreement_below_deep": 50,
        "review_queue": 50,
        "page_first": 50,
        "page_filtered": 15,
        "page_search": 3,
    }
    for figures in requests.values():
        assert 0 < figures["median_ms"] <= figures["max_ms"]
        assert figures["cpu_seconds_per_request"] >= 0
    target = result["target"]
    assert target["slowest_median_ms"] == max(f["median_ms"] for f in requests.values())
    assert target["met"] is (target["slowest_median_ms"] < 300)
