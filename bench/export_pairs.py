"""Benchmark: a preference snapshot of N labeler pairs (default 1,000,000) to JSONL, Parquet
and a `datasets` folder, with its rows per second and peak memory.

Builds a fresh SQLite database in a temp folder with bulk inserts: tasks of 3 responses, each
judged by 2 of 50 labelers (no ties, so 3 pairs per comparison and 6 per task), one item in
ten flagged; then times `create_snapshot` (kind preference, source pairs, 10% test split),
which includes the consensus weight of every pair. Peak RSS of the export alone comes from
resetting the kernel's high-water mark (/proc/self/clear_refs) just before it.

    .venv/bin/python bench/export_pairs.py                 # 1,000,000 pairs
    .venv/bin/python bench/export_pairs.py --pairs 6000 --out /tmp/results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from app import migrate  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.models import User  # noqa: E402
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters  # noqa: E402
from app.services.snapshots import create_snapshot  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.agreement_scale import bulk_insert, reset_peak, rss_mb  # noqa: E402

RESULT_FILE = "export_pairs.json"
LABELERS = 50
K = 3
NOW = "2024-01-01 00:00:00.000000"
# (winner position, loser position) of each pair of a ranking best first.
ORDERED = ((0, 1), (0, 2), (1, 2))


def ranking(task: int, judge: int) -> tuple[int, int, int]:
    """Response positions best first: the first judge ranks 0 1 2, the second varies."""
    if judge == 0:
        return (0, 1, 2)
    return ((0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 1, 0))[task % 4]


def fill(url: str, tasks: int) -> dict[str, int]:
    engine = make_engine(url)
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("BEGIN")

    def insert(table: str, columns: str, rows: Iterator[Sequence[Any]] | list[Any]) -> None:
        bulk_insert(cursor, "sqlite", table, columns, rows)

    insert(
        "users",
        "id username display_name password_hash role is_active must_change_password "
        "updated_at created_at",
        [
            (i + 1, f"user{i:03d}", "", "x", "researcher" if i == 0 else "labeler", 1, 0, NOW, NOW)
            for i in range(LABELERS + 1)
        ],
    )
    insert(
        "projects",
        "id name description label_schema is_archived updated_at created_at",
        [(1, "Bench", "", '{"flags": []}', 0, NOW, NOW)],
    )
    insert(
        "guideline_versions",
        "id project_id version body note created_at",
        [(1, 1, 1, "Be kind.", "", NOW)],
    )
    insert(
        "queues",
        "id project_id name kind overlap max_overlap priority lease_seconds max_active_leases "
        "open_to_all is_paused created_at",
        [(1, 1, "pairs", "comparison", 2, 2, 0, 1800, 3, 1, 0, NOW)],
    )
    insert(
        "prompts",
        "id project_id messages category source content_hash created_at",
        (
            (t + 1, 1, json.dumps([{"role": "user", "content": f"Prompt number {t}: explain."}]),
             "other", "bench", f"{t:064x}", NOW)
            for t in range(tasks)
        ),
    )  # fmt: skip
    insert(
        "responses",
        "id prompt_id content source source_name created_at",
        (
            (r + 1, r // K + 1, f"Response {r}, a few words long.", "import", "", NOW)
            for r in range(tasks * K)
        ),
    )
    insert(
        "tasks",
        "id queue_id prompt_id priority overlap is_gold created_at",
        ((t + 1, 1, t + 1, 0, 2, 0, NOW) for t in range(tasks)),
    )
    insert(
        "comparisons",
        "id task_id prompt_id labeler_id source source_name guideline_version_id "
        "all_unacceptable comment created_at",
        (
            (2 * t + j + 1, t + 1, t + 1, (2 * t + j) % LABELERS + 2, "labeler", "", 1, 0, "", NOW)
            for t in range(tasks)
            for j in range(2)
        ),
    )

    def items() -> Iterator[tuple[Any, ...]]:
        for t in range(tasks):
            for j in range(2):
                best_first = ranking(t, j)
                for place, position in enumerate(best_first):
                    response = t * K + position + 1
                    flags = '["hallucination"]' if response % 10 == 0 else "[]"
                    yield (2 * t + j + 1, response, 7 - 2 * place, place + 1, flags, "")

    insert("comparison_items", "comparison_id response_id score rank flags flag_note", items())

    def pairs() -> Iterator[tuple[Any, ...]]:
        pair_id = 0
        for t in range(tasks):
            for j in range(2):
                best_first = ranking(t, j)
                for a, b in ORDERED:
                    pair_id += 1
                    winner, loser = t * K + best_first[a] + 1, t * K + best_first[b] + 1
                    yield (pair_id, 2 * t + j + 1, t + 1, winner, loser, float(2 * (b - a)))

    insert(
        "pairs",
        "id comparison_id prompt_id winner_response_id loser_response_id margin",
        pairs(),
    )
    cursor.execute("COMMIT")
    raw.close()
    engine.dispose()
    return {"tasks": tasks, "comparisons": 2 * tasks, "pairs": 6 * tasks}


def run(pairs: int, workdir: Path) -> dict[str, Any]:
    tasks = max(1, pairs // 6)
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    migrate.upgrade(url)
    started = time.perf_counter()
    shape = fill(url, tasks)
    build_seconds = time.perf_counter() - started

    settings = Settings(data_dir=workdir / "data", database_url=url, secret_key="b" * 40)
    engine = make_engine(url)
    with Session(engine) as db:
        researcher = db.get(User, 1)
        assert researcher is not None
        data = SnapshotCreate(
            name="bench pairs",
            kind="preference",
            source="pairs",
            margin="score_gap",  # every column, as the figures before the option measured
            filters=SnapshotFilters(),
        )
        reset_peak()
        rss_before = rss_mb("VmRSS")
        load_before = os.getloadavg()[0]
        started, cpu, main_cpu = time.perf_counter(), time.process_time(), time.thread_time()
        snapshot = create_snapshot(db, settings, 1, data, researcher)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        main_cpu_seconds = time.thread_time() - main_cpu
        load_after = os.getloadavg()[0]
        # The peak of the export includes where it started: in a process with other threads
        # (a test worker's), the RSS can fall between the reset and the first read.
        peak = max(rss_mb("VmHWM"), rss_before)
        folder = settings.data_dir / snapshot.path
        sizes = {path.name: path.stat().st_size for path in folder.iterdir() if path.is_file()}
        rows = snapshot.row_counts["train"] + snapshot.row_counts["test"]
    engine.dispose()
    return {
        "shape": shape,
        "build_seconds": round(build_seconds, 2),
        "export": {
            "rows": rows,
            "row_counts": snapshot.row_counts,
            "seconds": round(seconds, 2),
            # Both threads (the writer's included), then the calling thread's alone: on an
            # idle machine with two cores the latter bounds the wall time.
            "cpu_seconds": round(cpu_seconds, 2),
            "main_thread_cpu_seconds": round(main_cpu_seconds, 2),
            # The machine's 1-minute load average before and after: the wall time means
            # little when other processes share the cores.
            "load_average": [round(load_before, 2), round(load_after, 2)],
            "rows_per_second": round(rows / seconds),
            "rss_before_mb": round(rss_before),
            "peak_rss_mb": round(peak),
            "file_bytes": sizes,
        },
        "target": {
            "rows_per_second": 100_000,
            "peak_rss_mb": 1024,
            "met": rows / seconds >= 100_000 and peak < 1024,
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="smiley-export-bench-"))
    try:
        result = run(args.pairs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["note"] = args.note
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
