"""bench/agreement_scale.py at a small size: it runs end to end and its figures are sane."""

from __future__ import annotations

import json
from pathlib import Path

from bench import agreement_scale

PHASES = {
    "build",
    "pairs",
    "pairs_at_once",
    "agreement_report",
    "agreement_dashboard",
    "alpha_traced",
    "consensus_all_tasks",
    "task_consensus_cold",
    "task_consensus_warm",
}


def test_a_small_run_on_sqlite(tmp_path: Path) -> None:
    agreement_scale.main(["--comparisons", "3000", "--out", str(tmp_path), "--note", "test"])

    saved = json.loads((tmp_path / "agreement_scale.json").read_text())
    assert set(saved) == {"sqlite"}
    result = saved["sqlite"]
    assert result["note"] == "test"
    assert result["shape"]["comparisons"] == 3000
    assert result["shape"]["tasks"] == 1000
    phases = result["phases"]
    assert set(phases) == PHASES
    for phase in phases.values():
        assert phase["seconds"] >= 0 and phase["cpu_seconds"] >= 0 and phase["load_average"] >= 0
        assert 0 < phase["rss_before_mb"] <= phase["peak_rss_mb"]
    assert phases["build"]["comparison_items"] == 12000
    # 3000 rankings of 4 give 6 pairs each, less a few ties.
    assert 0.95 * 18000 < phases["pairs"]["pairs"] < 18000
    assert phases["pairs_at_once"]["pairs"] == phases["pairs"]["pairs"]
    assert phases["alpha_traced"]["units"] == 4000  # every response of every task, 3 scores
    assert phases["consensus_all_tasks"]["tasks"] == 1000
    warm = phases["task_consensus_warm"]
    assert (warm["computed"], warm["reused"], warm["fingerprinted"]) == (1, 1, 1)
    target = result["target"]
    parts = [
        target["agreement_dashboard_seconds"],
        target["consensus_of_every_task_seconds"],
        target["expand_every_comparison_seconds"],
    ]
    assert target["expand_pairs_one_by_one_seconds"] == round(
        phases["pairs"]["read_seconds"] + phases["pairs"]["expand_seconds"], 2
    )
    assert target["total_seconds"] == round(sum(parts), 2)
    assert target["met"] is (target["total_seconds"] <= 30)
    assert target["peak_rss_mb"] == max(
        phase["peak_rss_mb"] for name, phase in phases.items() if name != "build"
    )

    figures = result["figures"]
    assert figures["comparisons"] == 3000
    assert figures["labelers"] == 200
    assert 0.6 < figures["pairwise_agreement"] < 0.85
    assert 0.3 < figures["krippendorff_alpha"] < 0.8
    assert 0.3 < figures["mean_kendall_tau"] < 0.8
    assert figures["tau_pairs"] == 3000  # three labelers per task: three pairs of them
    assert (figures["queues"], figures["guideline_versions"]) == (4, 2)
    assert figures["gold_pairs"] > 0
    assert 0.5 < figures["one_task_consensus_support"] <= 1


def test_results_of_each_backend_are_kept(tmp_path: Path) -> None:
    (tmp_path / "agreement_scale.json").write_text(json.dumps({"postgresql": {"kept": True}}))

    agreement_scale.main(["--comparisons", "30", "--out", str(tmp_path)])

    saved = json.loads((tmp_path / "agreement_scale.json").read_text())
    assert saved["postgresql"] == {"kept": True}
    assert saved["sqlite"]["figures"]["comparisons"] == 30
