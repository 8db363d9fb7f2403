"""Benchmark: importing N Anthropic HH-RLHF rows (default 1,000,000) from JSONL.

Writes N rows to a temporary JSONL file (multi-turn transcripts, a shared prompt and two
different final Assistant turns; one prompt in ten repeats an earlier one, so deduplication
is exercised), then imports them with app.services.imports.import_stream into a fresh,
migrated database: SQLite in a temporary folder, or a database of its own on the PostgreSQL
server given with --database-url. Reports rows/s and the peak RSS of the import (the kernel's
high-water mark, reset just before it), and checks what was stored.

    .venv/bin/python bench/import_hh.py                    # 1,000,000 rows, SQLite
    .venv/bin/python bench/import_hh.py --rows 20000 --out /tmp/results
    .venv/bin/python bench/import_hh.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import migrate  # noqa: E402
from app.db import make_engine, session_factory  # noqa: E402
from app.models import Comparison, Pair, Project, Prompt, Response  # noqa: E402
from app.schemas.imports import ImportProgress  # noqa: E402
from app.services.imports import import_stream  # noqa: E402

RESULT_FILE = "import_hh.json"
REPEAT_EVERY = 10  # every tenth row reuses an earlier row's prompt


def hh_row(index: int) -> dict[str, str]:
    topic = index // REPEAT_EVERY if index % REPEAT_EVERY == 0 else index
    prompt = (
        f"\n\nHuman: I have a question about topic {topic}. Could you explain how it works, "
        "step by step, with an example?"
        f"\n\nAssistant: Sure. Topic {topic} is about turning inputs into outputs in a few "
        "careful steps; which part would you like first?"
        f"\n\nHuman: Start with the first step of topic {topic}, please."
    )
    return {
        "chosen": prompt + f"\n\nAssistant: The first step is to collect the inputs ({index}); "
        "then check each one before going further, so later steps can trust them.",
        "rejected": prompt + f"\n\nAssistant: I am not sure about that ({index}).",
    }


def write_rows(path: Path, rows: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        for index in range(rows):
            out.write(json.dumps(hh_row(index)) + "\n")
    return path.stat().st_size


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux 4.0+), so the import gets its own peak."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


@contextmanager
def fresh_database(url: str | None) -> Iterator[tuple[str, str]]:
    """(URL of an empty database, backend name), removed afterwards."""
    if url is None:
        folder = tempfile.mkdtemp(prefix="smiley-bench-")
        try:
            yield f"sqlite:///{folder}/bench.sqlite3", "sqlite"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url must be postgresql+psycopg://..., not {url!r}")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"smiley_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False), "postgresql"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, rows: int, folder: Path) -> dict[str, Any]:
    path = folder / "hh-rlhf.jsonl"
    started = time.perf_counter()
    size = write_rows(path, rows)
    write_seconds = time.perf_counter() - started
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as db:
            project = Project(name="HH-RLHF", label_schema={"flags": []})
            db.add(project)
            db.commit()
            last_report = [time.perf_counter()]

            def progress(state: ImportProgress) -> None:
                if time.perf_counter() - last_report[0] > 30:
                    last_report[0] = time.perf_counter()
                    print(
                        f"  {state.rows_read:,} rows, peak RSS {rss_mb('VmHWM'):.0f} MB", flush=True
                    )

            gc.collect()
            reset_peak()
            before = rss_mb("VmRSS")
            started, cpu = time.perf_counter(), time.process_time()
            with path.open("rb") as stream:
                result = import_stream(
                    db,
                    project.id,
                    stream,
                    path.name,
                    on_error="stop",
                    acting=None,
                    progress=progress,
                )
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu
            peak = rss_mb("VmHWM")
            stored = {
                "prompts": db.scalar(select(func.count()).select_from(Prompt)),
                "responses": db.scalar(select(func.count()).select_from(Response)),
                "comparisons": db.scalar(select(func.count()).select_from(Comparison)),
                "pairs": db.scalar(select(func.count()).select_from(Pair)),
            }
    finally:
        engine.dispose()
    return {
        "rows": rows,
        "file_mb": round(size / 1e6, 1),
        "write_file_seconds": round(write_seconds, 2),
        "import_seconds": round(seconds, 2),
        "import_cpu_seconds": round(cpu_seconds, 2),
        "rows_per_second": round(rows / seconds),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(peak),
        "result": result.model_dump(exclude={"errors", "warnings", "stop_error", "filters"}),
        "stored": stored,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server where a database of its own is made and dropped afterwards "
        "(default: SQLite in a temporary folder)",
    )
    parser.add_argument("--note", default="", help="kept with the results, e.g. what else ran")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    with (
        fresh_database(args.database_url) as (url, backend),
        tempfile.TemporaryDirectory(prefix="smiley-hh-") as folder,
    ):
        measured = run(url, args.rows, Path(folder))
    result = {
        "benchmark": "import of HH-RLHF rows from JSONL",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "note": args.note,
        **measured,
    }
    # One file, one entry per backend: a SQLite run keeps the last PostgreSQL one.
    path = args.out / RESULT_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[backend] = result
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
