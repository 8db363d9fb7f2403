"""Benchmark: pair expansion and every agreement figure over a million comparisons.

Builds a project of N comparisons (default 1,000,000) of 4 responses with overlap 3 straight
into a fresh database with bulk inserts (executemany on SQLite, COPY on PostgreSQL), then
times each phase on its own, with its peak memory:

- pairs: every comparison's ranking read back and expanded with app.services.pairs
  (expand_pairs, the code path of a submission), in slices of comparisons; with
  --store-pairs the pairs are also written, as submissions write them;
- the agreement report (overall, per queue, per guideline version, per labeler with gold
  accuracy; pairwise agreement, Krippendorff's alpha, Kendall's tau), and the dashboard (the
  report and its daily points from one read);
- the consensus of every task, and of one task cold and warm (cached labeler reliability).

`target` adds up the dashboard, the consensus of every task and the expansion of every
comparison (read, then expand_pair_arrays, all at once) against the issue's 30 s; the
expansion one comparison at a time (the submission path) is reported beside it. Results go to
bench/results/agreement_scale.json, one entry per backend (a run keeps the other's).

Labelers (a pool of 200) see a hidden utility per response plus their own Gaussian noise,
which gives about the 73% pairwise agreement InstructGPT reports; close calls become ties;
scores 1-7 follow what they saw. Peak RSS per phase comes from resetting the kernel's
high-water mark (/proc/self/clear_refs) before it; tracemalloc's peak is taken for the alpha
step alone (numpy work, where tracing costs little).

    .venv/bin/python bench/agreement_scale.py                      # SQLite in a temp folder
    .venv/bin/python bench/agreement_scale.py --comparisons 3000 --out /tmp/results
    .venv/bin/python bench/agreement_scale.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app import migrate  # noqa: E402
from app.db import make_engine, session_factory  # noqa: E402
from app.models import Comparison, ComparisonItem, Queue, Task  # noqa: E402
from app.services.agreement import metrics, service  # noqa: E402
from app.services.agreement.alpha import score_units  # noqa: E402
from app.services.agreement.consensus import consensus  # noqa: E402
from app.services.agreement.loading import fetch_integers, load_ratings  # noqa: E402
from app.services.agreement.ratings import Ratings  # noqa: E402
from app.services.agreement.reliability import CACHE, project_reliability  # noqa: E402
from app.services.pairs import RankedResponse, expand_pair_arrays, expand_pairs  # noqa: E402

RESULT_FILE = "agreement_scale.json"
START = np.datetime64("2024-01-01T00:00:00", "us")
SLICE = 100_000  # comparisons per read -> expand -> store round of the pairs phase


# --- the data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    comparisons: int
    labelers: int = 200
    seed: int = 3
    responses: int = 4
    overlap: int = 3
    queues: int = 4
    days: int = 90
    gold_every: int = 100  # every 100th task is a gold task
    noise: float = 0.7  # labelers' mean noise, in units of the responses' spread
    tie_gap: float = 0.05  # responses seen closer than this are tied

    @property
    def tasks(self) -> int:
        return math.ceil(self.comparisons / self.overlap)


def distinct_labelers(rng: np.random.Generator, tasks: int, overlap: int, pool: int) -> np.ndarray:
    """(tasks, overlap) labeler indices, all different within a row."""
    chosen = rng.integers(0, pool, size=(tasks, overlap))
    while True:
        ordered = np.sort(chosen, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeated.any():
            return chosen
        chosen[repeated] = rng.integers(0, pool, size=(int(repeated.sum()), overlap))


def generate(shape: Shape) -> dict[str, np.ndarray]:
    """Every comparison as arrays, in id order (ids follow time, as submissions do)."""
    rng = np.random.default_rng(shape.seed)
    n, k, tasks = shape.comparisons, shape.responses, shape.tasks
    task = np.arange(n) // shape.overlap
    labeler = distinct_labelers(rng, tasks, shape.overlap, shape.labelers).ravel()[:n]
    span = shape.days * 86400.0
    opened = np.sort(rng.uniform(0, span * 0.97, tasks))
    waits = rng.exponential(4 * 3600, size=(tasks, shape.overlap)).cumsum(axis=1).ravel()[:n]
    seconds = np.minimum(opened[task] + waits, span - 1)

    utility = rng.normal(size=(tasks, k))
    noise = shape.noise * np.exp(rng.normal(0, 0.35, shape.labelers))
    seen = utility[task] + noise[labeler][:, None] * rng.normal(size=(n, k))
    order = np.argsort(-seen, axis=1)
    ordered = np.take_along_axis(seen, order, axis=1)
    steps = (ordered[:, :-1] - ordered[:, 1:]) >= shape.tie_gap
    rank = np.empty((n, k), dtype=np.int64)
    levels = np.concatenate([np.ones((n, 1), dtype=np.int64), 1 + steps.cumsum(axis=1)], axis=1)
    np.put_along_axis(rank, order, levels, axis=1)
    score = np.clip(np.rint(4 + 1.4 * seen + rng.normal(0, 0.4, size=(n, k))), 1, 7)

    by_time = np.argsort(seconds, kind="stable")
    return {
        "task": task[by_time],
        "labeler": labeler[by_time],
        "seconds": seconds[by_time],
        "rank": rank[by_time],
        "score": score[by_time].astype(np.int64),
        "best_first": np.argsort(-utility, axis=1),  # per task, for gold answers
    }


def stamps(seconds: np.ndarray, backend: str) -> list[str]:
    """Stored UTC timestamps as each backend's column holds them (SQLite: naive text)."""
    text_ = np.datetime_as_string(START + (seconds * 1e6).astype("timedelta64[us]"), unit="us")
    text_ = np.char.replace(text_, "T", " ")
    return (np.char.add(text_, "+00") if backend == "postgresql" else text_).tolist()


def bulk_insert(
    cursor: Any, backend: str, table: str, columns: str, rows: Iterable[Sequence[Any]]
) -> None:
    """Rows into `table` (`columns` separated by spaces): executemany or COPY."""
    names = ", ".join(columns.split())
    if backend == "sqlite":
        marks = ", ".join("?" * len(columns.split()))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        return
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def fill_database(engine: Engine, shape: Shape) -> dict[str, int]:
    """The project (id 1) with its labelers, versions, queues, tasks and comparisons."""
    backend = engine.dialect.name
    data = generate(shape)
    k, tasks, n = shape.responses, shape.tasks, shape.comparisons
    yes, no = (True, False) if backend == "postgresql" else (1, 0)
    now = stamps(np.zeros(1), backend)[0]
    best = data["best_first"] + 1 + np.arange(tasks)[:, None] * k  # response ids, best first
    task, labeler, rank, score = data["task"], data["labeler"], data["rank"], data["score"]
    version = np.where(data["seconds"] < shape.days * 86400 / 2, 1, 2)
    tables: list[tuple[str, str, Iterable[Sequence[Any]]]] = [
        (
            "users",
            "id username display_name password_hash role is_active must_change_password "
            "updated_at created_at",
            (
                (i + 1, f"labeler{i:04d}", "", "not-a-hash", "labeler", yes, no, now, now)
                for i in range(shape.labelers)
            ),
        ),
        (
            "projects",
            "id name description label_schema is_archived updated_at created_at",
            [(1, "Bench", "", '{"flags": []}', no, now, now)],
        ),
        (
            "guideline_versions",
            "id project_id version body note created_at",
            [(v, 1, v, f"Guideline {v}.", "", now) for v in (1, 2)],
        ),
        (
            "queues",
            "id project_id name kind overlap max_overlap priority lease_seconds "
            "max_active_leases open_to_all is_paused created_at",
            [
                (
                    q,
                    1,
                    f"queue {q}",
                    "comparison",
                    shape.overlap,
                    shape.overlap,
                    0,
                    1800,
                    3,
                    yes,
                    no,
                    now,
                )
                for q in range(1, shape.queues + 1)
            ],
        ),
        (
            "prompts",
            "id project_id messages category source content_hash created_at",
            (
                (
                    t + 1,
                    1,
                    f'[{{"role": "user", "content": "Prompt {t}"}}]',
                    "other",
                    "bench",
                    f"{t:064x}",
                    now,
                )
                for t in range(tasks)
            ),
        ),
        (
            "responses",
            "id prompt_id content source source_name created_at",
            ((r + 1, r // k + 1, f"Response {r}", "import", "", now) for r in range(tasks * k)),
        ),
        (
            "tasks",
            "id queue_id prompt_id priority overlap is_gold gold_answer created_at",
            (
                (t + 1, t % shape.queues + 1, t + 1, 0, shape.overlap)
                + (
                    (yes, json.dumps({"ranking": [[r] for r in best[t].tolist()]}), now)
                    if t % shape.gold_every == 0
                    else (no, None, now)
                )
                for t in range(tasks)
            ),
        ),
        (
            "task_responses",
            "task_id response_id position",
            ((r // k + 1, r + 1, r % k) for r in range(tasks * k)),
        ),
        (
            "comparisons",
            "id task_id prompt_id labeler_id source source_name guideline_version_id "
            "all_unacceptable comment created_at",
            (
                (i, t + 1, t + 1, who + 1, "labeler", "", v, no, "", at)
                for i, t, who, v, at in zip(
                    range(1, n + 1),
                    task.tolist(),
                    labeler.tolist(),
                    version.tolist(),
                    stamps(data["seconds"], backend),
                    strict=True,
                )
            ),
        ),
        (
            "comparison_items",
            "comparison_id response_id score rank flags flag_note",
            (
                (c, r, s, rk, "[]", "")
                for c, r, s, rk in zip(
                    np.repeat(np.arange(1, n + 1), k).tolist(),
                    (task[:, None] * k + 1 + np.arange(k)).ravel().tolist(),
                    score.ravel().tolist(),
                    rank.ravel().tolist(),
                    strict=True,
                )
            ),
        ),
    ]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if backend == "sqlite":
            cursor.execute("BEGIN")
        for table, columns, rows in tables:
            bulk_insert(cursor, backend, table, columns, rows)
        if backend == "postgresql":
            for table in ("users", "projects", "guideline_versions", "queues", "prompts"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            for table in ("responses", "tasks", "comparisons"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            # What autovacuum would have done by the time a project is this big.
            cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return {"tasks": tasks, "comparisons": n, "comparison_items": n * k}


# --- pairs ------------------------------------------------------------------------------------


def ranked_items(db: Session, project_id: int) -> np.ndarray:
    """(comparison id, prompt id, response id, rank, score or 0) of every ranked item of the
    project's comparisons that have a ranking, by comparison id: two plain reads, joined here."""
    low, high = db.execute(select(func.min(Comparison.id), func.max(Comparison.id))).one()
    if low is None:
        return np.zeros((0, 5), dtype=np.int64)
    ranked = fetch_integers(
        db,
        select(Comparison.id, Comparison.prompt_id)
        .join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(Queue.project_id == project_id, Comparison.all_unacceptable.is_(False)),
        within=(Comparison.id, low, high),
    )
    ranked = ranked[np.argsort(ranked[:, 0])]
    items = fetch_integers(
        db,
        select(
            ComparisonItem.comparison_id,
            ComparisonItem.response_id,
            ComparisonItem.rank,
            func.coalesce(ComparisonItem.score, 0),  # scores are 1..7: 0 stands for none
        ).where(ComparisonItem.rank.is_not(None)),
        within=(ComparisonItem.comparison_id, low, high),
    )
    position = np.minimum(np.searchsorted(ranked[:, 0], items[:, 0]), max(len(ranked) - 1, 0))
    kept = ranked[position, 0] == items[:, 0]
    items, prompts = items[kept], ranked[position[kept], 1]
    order = np.argsort(items[:, 0], kind="stable")
    return np.column_stack([items[order, 0], prompts[order], items[order, 1:]])


def expand_pairs_of_project(db: Session, project_id: int, store: bool) -> dict[str, float | int]:
    """Every ranked comparison of the project through expand_pairs (as a submission expands
    its ranking), SLICE comparisons at a time; with `store` the pairs are written as pair rows.
    Reading, expanding and storing are timed apart."""
    backend = db.get_bind().dialect.name
    started = time.perf_counter()
    items = ranked_items(db, project_id)
    read = time.perf_counter() - started
    bounds = np.flatnonzero(np.diff(items[:, 0])) + 1 if len(items) else np.zeros(0, int)
    starts = np.concatenate([[0], bounds]).astype(np.int64) if len(items) else bounds
    expand = stored = 0.0
    pairs = 0
    cursor = db.connection().connection.cursor()
    for first in range(0, starts.size, SLICE):
        begin = int(starts[first])
        end = int(starts[first + SLICE]) if first + SLICE < starts.size else len(items)
        started = time.perf_counter()
        rows = zip(*(column.tolist() for column in items[begin:end].T), strict=True)
        found = []
        for (comparison_id, prompt_id), group in groupby(rows, key=itemgetter(0, 1)):
            ranked = [RankedResponse(row[2], row[3], row[4] or None) for row in group]
            found.append((comparison_id, prompt_id, expand_pairs(ranked)))
        expand += time.perf_counter() - started
        pairs += sum(len(expanded) for _, _, expanded in found)
        if store:
            started = time.perf_counter()
            bulk_insert(
                cursor,
                backend,
                "pairs",
                "comparison_id prompt_id winner_response_id loser_response_id margin",
                (
                    (c, p, pair.winner_response_id, pair.loser_response_id, pair.margin)
                    for c, p, expanded in found
                    for pair in expanded
                ),
            )
            stored += time.perf_counter() - started
    started = time.perf_counter()
    db.commit()
    stored += time.perf_counter() - started
    return {
        "pairs": pairs,
        "read_seconds": round(read, 2),
        "expand_seconds": round(expand, 2),
        "store_seconds": round(stored, 2) if store else None,
    }


def expand_pair_arrays_of_project(db: Session, project_id: int) -> dict[str, float | int]:
    """Every ranked comparison of the project expanded at once (expand_pair_arrays): the
    same pairs as expand_pairs, as columns."""
    started = time.perf_counter()
    items = ranked_items(db, project_id)
    read = time.perf_counter() - started
    started = time.perf_counter()
    found = expand_pair_arrays(items[:, 0], items[:, 2], items[:, 3], items[:, 4])
    expand = time.perf_counter() - started
    return {
        "pairs": int(found.winners.size),
        "read_seconds": round(read, 2),
        "expand_seconds": round(expand, 2),
    }


# --- measuring --------------------------------------------------------------------------------


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux 4.0+), so each phase gets its own peak."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def give_back_freed_memory() -> None:
    """glibc keeps freed heap pages (numpy's large arrays among them): return them, so a
    phase's RSS starts from what is still in use."""
    # Not glibc: the phase starts from a higher RSS, and rss_before_mb says so.
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Phases:
    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}

    @contextmanager
    def measure(self, name: str) -> Iterator[dict[str, Any]]:
        gc.collect()
        give_back_freed_memory()
        reset_peak()
        before = rss_mb("VmRSS")
        extra: dict[str, Any] = {}
        started, cpu = time.perf_counter(), time.process_time()
        yield extra
        seconds = time.perf_counter() - started
        self.found[name] = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            # Other work on the machine: 1-minute load average when the phase ended.
            "load_average": round(os.getloadavg()[0], 2),
            "rss_before_mb": round(before),
            "peak_rss_mb": round(rss_mb("VmHWM")),
            **extra,
        }
        print(f"{name}: {seconds:.2f} s, peak RSS {self.found[name]['peak_rss_mb']} MB", flush=True)


def traced_peak_mb(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def alpha_memory(ratings: Ratings) -> dict[str, Any]:
    """tracemalloc's peak over alpha overall and per queue (numpy work: tracing costs little)."""
    whole = np.zeros(ratings.judgement_count, dtype=np.int64)
    units = int(score_units(ratings, whole, 1).units.sum())
    peak = traced_peak_mb(
        lambda: [metrics.ordinal_alpha_by(ratings, label) for label in (None, "queue")]
    )
    return {"units": units, "tracemalloc_peak_mb": round(peak, 1)}


def consensus_of_every_task(db: Session, project_id: int) -> dict[str, Any]:
    """What task_consensus computes for every task at once, as arrays: the project's
    reliability and the weighted consensus (ranking levels, pair supports) of each task."""
    ratings = load_ratings(db, project_ids=[project_id])
    found = consensus(ratings, project_reliability(ratings))
    support = np.array([s for s in found.task_support().values() if s is not None])
    return {"tasks": int(ratings.tasks.size), "mean_task_support": float(support.mean())}


def found_pairs(phases: Phases, name: str) -> int:
    return int(phases.found[name]["pairs"])


def run(url: str, shape: Shape, store_pairs: bool) -> dict[str, Any]:
    phases = Phases()
    engine = make_engine(url)
    make = session_factory(engine)
    project_id = 1
    try:
        with phases.measure("build") as extra:
            migrate.upgrade(url)
            extra.update(fill_database(engine, shape))
        with make() as db, phases.measure("pairs") as extra:
            extra.update(expand_pairs_of_project(db, project_id, store_pairs))
        with make() as db, phases.measure("pairs_at_once") as extra:
            extra.update(expand_pair_arrays_of_project(db, project_id))
        if found_pairs(phases, "pairs") != found_pairs(phases, "pairs_at_once"):
            raise AssertionError("the two expansions found different numbers of pairs")
        with make() as db, phases.measure("agreement_report"):
            report = service.agreement_report(db, project_id)
        with make() as db, phases.measure("agreement_dashboard") as extra:
            extra["days"] = len(service.agreement_dashboard(db, project_id).over_time)
        with make() as db, phases.measure("alpha_traced") as extra:
            extra.update(alpha_memory(load_ratings(db, project_ids=[project_id])))
        with make() as db, phases.measure("consensus_all_tasks") as extra:
            extra.update(consensus_of_every_task(db, project_id))
        CACHE.clear()
        with make() as db:
            one = int(db.scalar(select(func.max(Task.id))) or 0) // 2
        with make() as db, phases.measure("task_consensus_cold"):
            cold = service.task_consensus(db, [one])
        with make() as db, phases.measure("task_consensus_warm") as extra:
            warm = service.task_consensus(db, [one])
            extra.update(
                computed=CACHE.computed, reused=CACHE.reused, fingerprinted=CACHE.fingerprinted
            )
        if cold != warm:
            raise AssertionError("a cached reliability gave another consensus")
    finally:
        engine.dispose()

    found = phases.found
    parts = {
        # Every figure of the agreement page from one read, including the agreement's own
        # expansion of every judgement into response-pair votes.
        "agreement_dashboard_seconds": found["agreement_dashboard"]["seconds"],
        "consensus_of_every_task_seconds": found["consensus_all_tasks"]["seconds"],
        # Every comparison's pairs, derived at once (expand_pair_arrays).
        "expand_every_comparison_seconds": round(
            found["pairs_at_once"]["read_seconds"] + found["pairs_at_once"]["expand_seconds"], 2
        ),
    }
    total = round(sum(parts.values()), 2)
    # For comparison: the submission path (expand_pairs) run a million times over.
    one_by_one = round(found["pairs"]["read_seconds"] + found["pairs"]["expand_seconds"], 2)
    overall = report.overall
    rates = sorted(row.pairwise_agreement for row in report.labelers if row.pairwise_agreement)
    return {
        "phases": found,
        "target": {
            "limit_seconds": 30,
            **parts,
            "total_seconds": total,
            "met": total <= 30,
            "expand_pairs_one_by_one_seconds": one_by_one,
            "peak_rss_mb": max(
                phase["peak_rss_mb"] for name, phase in found.items() if name != "build"
            ),
        },
        "figures": {
            "comparisons": overall.comparisons,
            "labelers": overall.labelers,
            "pairwise_agreement": overall.pairwise_agreement,
            "labeler_pairs": overall.labeler_pairs,
            "response_pairs": overall.response_pairs,
            "krippendorff_alpha": overall.krippendorff_alpha,
            "mean_kendall_tau": overall.mean_kendall_tau,
            "tau_pairs": overall.tau_pairs,
            "queues": len(report.queues),
            "guideline_versions": len(report.guideline_versions),
            "labeler_agreement_min": rates[0] if rates else None,
            "labeler_agreement_max": rates[-1] if rates else None,
            "gold_pairs": sum(row.gold_pairs for row in report.labelers),
            "one_task_consensus_support": cold[0].support,
        },
    }


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
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or Path(parsed.database).exists():
            raise SystemExit(f"give a SQLite file that does not exist yet, not {url!r}")
        yield url, "sqlite"
        return
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(
            f"--database-url must be sqlite:///FILE or postgresql+psycopg://..., not {url!r}"
        )
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--labelers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--database-url",
        help="a SQLite file to create, or a PostgreSQL server where a database of its own is "
        "made and dropped afterwards (default: SQLite in a temporary folder)",
    )
    parser.add_argument(
        "--store-pairs",
        action="store_true",
        help="also write the expanded pairs to the database (minutes at a million)",
    )
    parser.add_argument("--note", default="", help="kept with the results, e.g. what else ran")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    shape = Shape(comparisons=args.comparisons, labelers=args.labelers, seed=args.seed)
    if shape.comparisons < 1:
        parser.error("--comparisons must be at least 1")
    if shape.labelers < shape.overlap:
        parser.error(f"--labelers must be at least the overlap, {shape.overlap}")

    with fresh_database(args.database_url) as (url, backend):
        measured = run(url, shape, args.store_pairs)
    result = {
        "benchmark": "pair expansion and agreement figures at scale",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}",
        "note": args.note,
        "shape": asdict(shape) | {"tasks": shape.tasks},
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
