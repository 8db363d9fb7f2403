"""bench/run_all.py: every benchmark runs in its own process at smoke scale, and the summary
holds the figures of each beside the machine they were measured on; failures and timeouts are
recorded without stopping the others."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run_all
from tests.conftest import POSTGRES_ADMIN_URL, postgres_admin_engine

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMES = "\u00d7"
KINDS = ("sft", "reward", "dpo")
AGREEMENT_KEYS = {
    "agreement_dashboard_seconds",
    "consensus_of_every_task_seconds",
    "expand_every_comparison_seconds",
    "total_seconds",
    "comparisons_per_second",
    "expand_pairs_one_by_one_seconds",
    "task_consensus_cold_seconds",
    "peak_rss_mb",
    "pairwise_agreement",
}
KEYS = {
    "labeling_loop": {
        "submissions_per_second",
        "submissions_per_second_per_labeler",
        "lease_ms_p50",
        "lease_ms_p99",
        "submit_ms_p50",
        "submit_ms_p99",
        "over_overlap_tasks",
        "lost_submissions",
        "unfinished_tasks",
        "http_failures",
    },
    "agreement_scale_sqlite": AGREEMENT_KEYS,
    "agreement_scale_postgresql": AGREEMENT_KEYS,
    "import_hh": {"rows_per_second", "import_seconds", "peak_rss_mb"},
    "export_pairs": {"rows_per_second", "rows_per_second_vs_target", "seconds", "peak_rss_mb"},
    "train_throughput": {
        f"{kind}_{figure}"
        for kind in KINDS
        for figure in (
            "job_tokens_per_second",
            "plain_tokens_per_second",
            "ratio",
            "job_peak_memory_gb",
            "plain_peak_memory_gb",
        )
    }
    | {"packed_tokens_per_second", "padded_tokens_per_second", "packing_speedup"},
    "data_browser": {
        f"{request}_median_ms"
        for request in (
            "labels_first_page",
            "labels_filtered",
            "labels_filtered_none",
            "labels_deep_keyset_page",
            "labels_filtered_deep",
            "labels_by_day",
            "labels_gold",
            "labels_search_rare",
            "labels_search_common",
            "labels_search_every_prompt",
            "labels_search_none",
            "prompts_search_rare",
            "prompts_search_common",
            "prompts_search_every_response",
            "prompts_search_none",
            "labels_agreement_below",
            "labels_agreement_below_deep",
            "review_queue",
            "page_first",
            "page_filtered",
            "page_search",
        )
    }
    | {"slowest_median_ms"},
    "agreement_scale": {
        "sqlite_over_postgresql_total_seconds",
        "sqlite_over_postgresql_agreement_dashboard_seconds",
        "sqlite_over_postgresql_consensus_of_every_task_seconds",
    },
}
MACHINE = {
    "cpu_model",
    "cores",
    "ram_gb",
    "os",
    "kernel",
    "architecture",
    "python",
    "postgresql",
    "redis",
    "torch",
    "transformers",
    "trl",
    "cuda_device",
    "git_commit",
    "git_dirty",
    "date",
    "load_average_before",
    "load_average_after",
}
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"


def run_all_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/run_all.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_smoke_scale_runs_every_benchmark_and_writes_the_summary(tmp_path: Path) -> None:
    # labeling_loop and the PostgreSQL agreement run need the server: skip, or fail in CI.
    postgres_admin_engine().dispose()

    answer = run_all_command(
        "--scale", "smoke", "--out", str(tmp_path), "--postgres-url", POSTGRES_ADMIN_URL
    )

    assert answer.returncode == 0, answer.stdout[-4000:] + answer.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["scale"] == "smoke"
    assert summary["failed"] == []
    names = [benchmark.name for benchmark in run_all.BENCHMARKS]
    assert [run["name"] for run in summary["runs"]] == names
    for run in summary["runs"]:
        assert (run["status"], run["error"], run["exit_code"]) == ("ok", None, 0), run
        assert run["seconds"] > 0 and run["peak_rss_mb"] > 0
        assert run["timeout_seconds"] == run_all.TIMEOUTS["smoke"]
        assert len(run["load_average_before"]) == len(run["load_average_after"]) == 3

    rows: dict[str, dict[str, dict]] = {}
    for row in summary["rows"]:
        rows.setdefault(row["benchmark"], {})[row["key"]] = row
    assert {name: set(found) for name, found in rows.items()} == KEYS
    for name, found in rows.items():
        for row in found.values():
            if row["unit"] in ("/s", TIMES, "MB", "GB", "ms"):
                assert row["value"] > 0, (name, row)
    labeling = rows["labeling_loop"]
    for key in ("over_overlap_tasks", "lost_submissions", "unfinished_tasks"):
        assert (labeling[key]["value"], labeling[key]["target"], labeling[key]["met"]) == (
            0,
            "= 0",
            True,
        )
    # 4 labelers: the per-labeler rate is the total over 4.
    assert labeling["submissions_per_second_per_labeler"]["value"] == pytest.approx(
        labeling["submissions_per_second"]["value"] / 4
    )
    for kind in KINDS:
        ratio = rows["train_throughput"][f"{kind}_ratio"]
        job = rows["train_throughput"][f"{kind}_job_tokens_per_second"]["value"]
        plain = rows["train_throughput"][f"{kind}_plain_tokens_per_second"]["value"]
        assert ratio["value"] == pytest.approx(job / plain)
        assert ratio["met"] is (ratio["value"] >= 0.97)
    export = rows["export_pairs"]["rows_per_second"]
    assert export["met"] is (export["value"] >= 100_000)
    sqlite = rows["agreement_scale_sqlite"]["total_seconds"]
    postgres = rows["agreement_scale_postgresql"]["total_seconds"]
    assert sqlite["target"] is None  # the 30 s target is for a million comparisons
    assert rows["agreement_scale"]["sqlite_over_postgresql_total_seconds"][
        "value"
    ] == pytest.approx(sqlite["value"] / postgres["value"])

    browser = rows["data_browser"]
    slowest = browser["slowest_median_ms"]
    medians = [row["value"] for key, row in browser.items() if key != "slowest_median_ms"]
    assert slowest["value"] == max(medians)
    assert (slowest["target"], slowest["met"]) == (None, None)  # 300 ms is for 1M comparisons

    machine = summary["machine"]
    assert set(machine) == MACHINE
    assert machine["cores"] == os.cpu_count()
    assert machine["python"] == platform.python_version()
    assert machine["kernel"] == platform.release()
    assert machine["ram_gb"] > 0 and machine["cpu_model"]
    assert re.fullmatch(r"\d+(\.\d+)?.*", machine["postgresql"])
    assert re.fullmatch(r"[0-9a-f]{40}", machine["git_commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", machine["date"])
    assert len(machine["load_average_before"]) == len(machine["load_average_after"]) == 3

    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.startswith("### Benchmarks, scale `smoke`")
    assert f"Python {platform.python_version()}" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    # Two tables: a header line each, a line per run, a line per figure.
    assert len(table) == 4 + len(summary["runs"]) + len(summary["rows"])
    assert "| labeling_loop | ok |" in markdown

    # The scripts' own JSON lands in the output folder too, one entry per backend.
    saved = json.loads((tmp_path / "agreement_scale.json").read_text())
    assert set(saved) == {"sqlite", "postgresql"}
    assert set(json.loads((tmp_path / "import_hh.json").read_text())) == {"sqlite"}
    for name in ("labeling_loop", "export_pairs", "train_throughput", "data_browser"):
        assert json.loads((tmp_path / f"{name}.json").read_text())
    assert (tmp_path / "logs" / "train_throughput.log").stat().st_size > 0


def test_a_failing_benchmark_is_recorded_and_the_others_still_run(tmp_path: Path) -> None:
    (tmp_path / "import_hh.json").write_text(json.dumps({"postgresql": {"kept": True}}))

    answer = run_all_command(
        "--scale",
        "smoke",
        "--out",
        str(tmp_path),
        "--only",
        "labeling_loop,import_hh",
        "--postgres-url",
        UNREACHABLE,
    )

    assert answer.returncode == 1, answer.stdout[-4000:] + answer.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == ["labeling_loop"]
    failed, ran = summary["runs"]
    assert (failed["name"], failed["status"], failed["exit_code"]) == ("labeling_loop", "failed", 1)
    assert failed["error"].startswith("exit code 1: ")
    assert "OperationalError" in failed["error"]
    assert (ran["name"], ran["status"], ran["error"]) == ("import_hh", "ok", None)
    assert {row["benchmark"] for row in summary["rows"]} == {"import_hh"}
    assert summary["machine"]["postgresql"] is None
    assert not (tmp_path / "labeling_loop.json").exists()
    saved = json.loads((tmp_path / "import_hh.json").read_text())
    assert saved["postgresql"] == {"kept": True}
    assert saved["sqlite"]["rows"] == 2000
    markdown = (tmp_path / "summary.md").read_text().splitlines()
    line = next(line for line in markdown if line.startswith("| labeling_loop |"))
    assert line.startswith("| labeling_loop | failed: exit code 1: ")
    assert "OperationalError" in line  # the traceback's last line, not its first


def test_a_benchmark_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(120)"]

    # Even when this process ignores SIGINT, as one started in the background does (the
    # benchmark would inherit that and be SIGKILLed 30 s later, its database left behind).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run = run_all.run_process(command, dict(os.environ), tmp_path / "sleep.log", timeout=2)
    finally:
        signal.signal(signal.SIGINT, previous)

    assert run.error == "timed out after 2 s"
    assert run.exit_code == -2  # SIGINT, which lets a benchmark drop its database first
    assert run.seconds < 30


def test_unknown_benchmark_names_are_refused(tmp_path: Path) -> None:
    answer = run_all_command("--scale", "smoke", "--out", str(tmp_path), "--only", "nope")

    assert answer.returncode == 2
    assert "unknown benchmark(s): nope" in answer.stderr
    assert list(tmp_path.iterdir()) == []
