"""Run every benchmark under bench/ and write a results table (summary.json and summary.md).

Each benchmark runs as its own subprocess (so its peak RSS is its own) under a timeout, writing
its JSON into a scratch folder first; the runner reads the figures from there, then merges the
JSON into the output folder (per-backend files keep the other backend's entry, as the scripts
do). A benchmark that fails, times out or writes no result is recorded as failed with its
error, the others still run, and the exit code is 1.

    .venv/bin/python bench/run_all.py                          # default scale, ~3 min
    .venv/bin/python bench/run_all.py --scale smoke --out /tmp/bench
    .venv/bin/python bench/run_all.py --scale full --only agreement_scale,export_pairs

Scales: `smoke` runs each benchmark for seconds (what the test uses); `default` the whole
suite in about 3 minutes on a quiet 2-core machine; `full` the sizes the README publishes
(1,000,000 comparisons, rows and pairs; hours in all).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SCALES = ("smoke", "default", "full")
# Per benchmark, in seconds: smoke runs must stay short enough for a test.
TIMEOUTS = {"smoke": 180, "default": 900, "full": 6 * 3600}
POSTGRES_URL = os.environ.get(
    "SMILEY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("SMILEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# The targets: 1M comparisons through the agreement phases in 30 s, exports at
# 100k rows/s under 1 GB, training jobs at 97% of plain TRL, data browser requests under
# 300 ms at 1M comparisons.
AGREEMENT_LIMIT_SECONDS = 30
AGREEMENT_TARGET_RATE = 1_000_000 / AGREEMENT_LIMIT_SECONDS
EXPORT_TARGET_ROWS_PER_SECOND = 100_000
EXPORT_TARGET_PEAK_MB = 1024
TRAIN_TARGET_RATIO = 0.97
BROWSER_TARGET_MS = 300  # data browser pages at a million comparisons
TIMES = "\u00d7"  # the unit of ratios (ruff flags the literal sign as ambiguous)
SIGINT_GRACE_SECONDS = 30  # time a timed-out benchmark gets to drop its database
EXCEPTION = re.compile(r"[A-Za-z_][\w.]*: ")  # how a traceback's last exception line starts


@dataclass(frozen=True)
class Row:
    """One measured figure of one benchmark, as a line of the results table."""

    benchmark: str
    key: str  # stable, machine-readable name of the figure
    figure: str  # what a reader sees
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    result_file: str  # what the script writes into --out (or is given as --out)
    scale_args: dict[str, list[str]]
    figures: Callable[[str, dict[str, Any]], list[Row]]
    postgres: bool = False  # "{postgres}" in an argument becomes the server's URL
    out_is_file: bool = False  # train_throughput takes a file path as --out
    backend: str | None = None  # key of the per-backend entry in the script's JSON

    def command(self, scale: str, scratch: Path, postgres_url: str) -> list[str]:
        args = [arg.replace("{postgres}", postgres_url) for arg in self.scale_args[scale]]
        out = scratch / self.result_file if self.out_is_file else scratch
        return [sys.executable, str(ROOT / "bench" / self.script), *args, "--out", str(out)]


@dataclass
class Run:
    """What happened when one benchmark ran."""

    name: str
    script: str
    command: list[str]
    status: str = "failed"
    error: str | None = None
    exit_code: int | None = None
    seconds: float = 0.0
    timeout_seconds: int = 0
    peak_rss_mb: float | None = None  # the largest process of its tree, from wait4
    load_average_before: list[float] = field(default_factory=list)
    load_average_after: list[float] = field(default_factory=list)
    log: str = ""


# --- figures from each script's JSON ----------------------------------------------------------


def labeling_figures(name: str, result: dict[str, Any]) -> list[Row]:
    labelers = result["labelers"]
    shape = f"{labelers} labelers, {result['tasks']} tasks {TIMES} {result['overlap']}"
    rate = result["submissions_per_second"]
    rows = [
        Row(name, "submissions_per_second", f"submissions/s ({shape})", rate, "/s"),
        Row(
            name,
            "submissions_per_second_per_labeler",
            "submissions/s per labeler",
            rate / labelers,
            "/s",
        ),
        Row(name, "lease_ms_p50", "lease p50", result["lease_ms_p50"], "ms"),
        Row(name, "lease_ms_p99", "lease p99", result["lease_ms_p99"], "ms"),
        Row(name, "submit_ms_p50", "submit p50", result["submit_ms_p50"], "ms"),
        Row(name, "submit_ms_p99", "submit p99", result["submit_ms_p99"], "ms"),
    ]
    # These must be 0 whatever the load: they are correctness, not speed.
    for key, figure in (
        ("over_overlap_tasks", "tasks leased beyond their overlap"),
        ("lost_submissions", "accepted submissions missing from the database"),
        ("unfinished_tasks", "tasks left unfinished"),
    ):
        rows.append(Row(name, key, figure, result[key], "count", "= 0", result[key] == 0))
    failures = sum(result["http_failures"].values())
    rows.append(Row(name, "http_failures", "HTTP failures (retried)", failures, "count"))
    return rows


def agreement_figures(name: str, result: dict[str, Any]) -> list[Row]:
    target, phases = result["target"], result["phases"]
    comparisons = result["shape"]["comparisons"]
    total = target["total_seconds"]
    full = comparisons >= 1_000_000
    rows = [
        Row(
            name,
            "agreement_dashboard_seconds",
            "agreement page: report + daily points",
            target["agreement_dashboard_seconds"],
            "s",
        ),
        Row(
            name,
            "consensus_of_every_task_seconds",
            "consensus of every task",
            target["consensus_of_every_task_seconds"],
            "s",
        ),
        Row(
            name,
            "expand_every_comparison_seconds",
            "pairs of every comparison at once",
            target["expand_every_comparison_seconds"],
            "s",
        ),
        # The 30 s target is for a million comparisons; smaller runs are held to its rate.
        Row(
            name,
            "total_seconds",
            f"total of the three ({comparisons:,} comparisons)",
            total,
            "s",
            f"≤ {AGREEMENT_LIMIT_SECONDS} s" if full else None,
            total <= AGREEMENT_LIMIT_SECONDS if full else None,
        ),
    ]
    if total > 0:
        rate = comparisons / total
        rows.append(
            Row(
                name,
                "comparisons_per_second",
                "comparisons/s through the three",
                rate,
                "/s",
                f"≥ {AGREEMENT_TARGET_RATE:,.0f}/s (1M in 30 s)",
                rate >= AGREEMENT_TARGET_RATE,
            )
        )
    rows += [
        Row(
            name,
            "expand_pairs_one_by_one_seconds",
            "expand_pairs one comparison at a time",
            target["expand_pairs_one_by_one_seconds"],
            "s",
        ),
        Row(
            name,
            "task_consensus_cold_seconds",
            "one task's consensus, cold",
            phases["task_consensus_cold"]["seconds"],
            "s",
        ),
        Row(name, "peak_rss_mb", "peak RSS of any phase", target["peak_rss_mb"], "MB"),
        Row(
            name,
            "pairwise_agreement",
            "pairwise agreement (simulated labelers)",
            result["figures"]["pairwise_agreement"],
            "share",
        ),
    ]
    return rows


def import_figures(name: str, result: dict[str, Any]) -> list[Row]:
    return [
        Row(
            name,
            "rows_per_second",
            f"HH-RLHF rows/s ({result['rows']:,} rows, SQLite)",
            result["rows_per_second"],
            "/s",
        ),
        Row(name, "import_seconds", "import", result["import_seconds"], "s"),
        Row(name, "peak_rss_mb", "peak RSS of the import", result["peak_rss_mb"], "MB"),
    ]


def export_figures(name: str, result: dict[str, Any]) -> list[Row]:
    export = result["export"]
    rate, peak = export["rows_per_second"], export["peak_rss_mb"]
    return [
        Row(
            name,
            "rows_per_second",
            f"snapshot rows/s ({export['rows']:,} pairs, SQLite)",
            rate,
            "/s",
            f"≥ {EXPORT_TARGET_ROWS_PER_SECOND:,}/s",
            rate >= EXPORT_TARGET_ROWS_PER_SECOND,
        ),
        Row(
            name,
            "rows_per_second_vs_target",
            "rows/s over the target",
            rate / EXPORT_TARGET_ROWS_PER_SECOND,
            TIMES,
            "≥ 1",
            rate >= EXPORT_TARGET_ROWS_PER_SECOND,
        ),
        Row(name, "seconds", "export", export["seconds"], "s"),
        Row(
            name,
            "peak_rss_mb",
            "peak RSS of the export",
            peak,
            "MB",
            f"< {EXPORT_TARGET_PEAK_MB} MB",
            peak < EXPORT_TARGET_PEAK_MB,
        ),
    ]


def train_figures(name: str, result: dict[str, Any]) -> list[Row]:
    rows = []
    for kind, measured in result["kinds"].items():
        job, plain = measured["job"], measured["plain_trl"]
        batch = measured["settings"].get("batch_size")
        where = f"{result['device']}, {result['size']} model, batch {batch}"
        rows += [
            Row(
                name,
                f"{kind}_job_tokens_per_second",
                f"{kind} job tokens/s ({where})",
                job["tokens_per_second"],
                "/s",
            ),
            Row(
                name,
                f"{kind}_plain_tokens_per_second",
                f"{kind} plain TRL tokens/s",
                plain["tokens_per_second"],
                "/s",
            ),
            Row(
                name,
                f"{kind}_ratio",
                f"{kind} job / plain TRL",
                measured["ratio"],
                TIMES,
                f"≥ {TRAIN_TARGET_RATIO}",
                measured["ratio"] >= TRAIN_TARGET_RATIO,
            ),
            Row(
                name,
                f"{kind}_job_peak_memory_gb",
                f"{kind} job peak memory",
                job["peak_memory_gb"],
                "GB",
            ),
            Row(
                name,
                f"{kind}_plain_peak_memory_gb",
                f"{kind} plain TRL peak memory",
                plain["peak_memory_gb"],
                "GB",
            ),
        ]
    if packing := result.get("packing"):
        rows += [
            Row(
                name,
                "packed_tokens_per_second",
                "SFT packed tokens/s",
                packing["packed"]["tokens_per_second"],
                "/s",
            ),
            Row(
                name,
                "padded_tokens_per_second",
                "SFT padded tokens/s",
                packing["padded"]["tokens_per_second"],
                "/s",
            ),
            Row(name, "packing_speedup", "packed / padded", packing["speedup"], TIMES),
        ]
    return rows


def browser_figures(name: str, result: dict[str, Any]) -> list[Row]:
    comparisons = result["build"]["comparisons"]
    # The 300 ms target is for a million comparisons; smaller runs are shown without it.
    full = comparisons >= 1_000_000
    target = f"< {BROWSER_TARGET_MS} ms" if full else None
    rows = [
        Row(
            name,
            f"{request}_median_ms",
            f"{request.replace('_', ' ')}, median",
            figures["median_ms"],
            "ms",
            target,
            figures["median_ms"] < BROWSER_TARGET_MS if full else None,
        )
        for request, figures in result["requests"].items()
    ]
    slowest = result["target"]["slowest_median_ms"]
    rows.append(
        Row(
            name,
            "slowest_median_ms",
            f"slowest request's median ({comparisons:,} comparisons, PostgreSQL)",
            slowest,
            "ms",
            target,
            slowest < BROWSER_TARGET_MS if full else None,
        )
    )
    return rows


def agreement_ratio_rows(rows: Sequence[Row]) -> list[Row]:
    """PostgreSQL against SQLite on the agreement phases, when both ran at the same size."""
    found = {(row.benchmark, row.key): row.value for row in rows}
    sqlite, postgres = "agreement_scale_sqlite", "agreement_scale_postgresql"
    ratios = []
    for key, figure in (
        ("total_seconds", "SQLite / PostgreSQL seconds, total of the three"),
        ("agreement_dashboard_seconds", "SQLite / PostgreSQL seconds, agreement page"),
        ("consensus_of_every_task_seconds", "SQLite / PostgreSQL seconds, consensus of all"),
    ):
        slow, fast = found.get((sqlite, key)), found.get((postgres, key))
        if slow is not None and fast:
            ratios.append(
                Row("agreement_scale", f"sqlite_over_postgresql_{key}", figure, slow / fast, TIMES)
            )
    return ratios


def agreement(backend: str, args: dict[str, list[str]]) -> Benchmark:
    return Benchmark(
        name=f"agreement_scale_{backend}",
        script="agreement_scale.py",
        result_file="agreement_scale.json",
        scale_args=args,
        figures=agreement_figures,
        postgres=backend == "postgresql",
        backend=backend,
    )


def comparisons(count: int, postgres: bool) -> list[str]:
    return ["--comparisons", str(count)] + (["--database-url", "{postgres}"] if postgres else [])


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        name="labeling_loop",
        script="labeling_loop.py",
        result_file="labeling_loop.json",
        scale_args={
            "smoke": ["--labelers", "4", "--tasks", "10", "--overlap", "2"],
            # The README's published run, short enough for the default suite too.
            "default": ["--labelers", "64", "--tasks", "200", "--overlap", "3"],
            "full": ["--labelers", "64", "--tasks", "200", "--overlap", "3"],
        },
        figures=labeling_figures,
        postgres=True,
    ),
    agreement(
        "sqlite",
        {
            "smoke": comparisons(3000, False),
            "default": comparisons(100_000, False),
            "full": comparisons(1_000_000, False),
        },
    ),
    agreement(
        "postgresql",
        {
            "smoke": comparisons(3000, True),
            "default": comparisons(100_000, True),
            "full": comparisons(1_000_000, True),
        },
    ),
    Benchmark(
        name="import_hh",
        script="import_hh.py",
        result_file="import_hh.json",
        scale_args={
            "smoke": ["--rows", "2000"],
            "default": ["--rows", "50000"],
            "full": ["--rows", "1000000"],
        },
        figures=import_figures,
        backend="sqlite",
    ),
    Benchmark(
        name="export_pairs",
        script="export_pairs.py",
        result_file="export_pairs.json",
        scale_args={
            "smoke": ["--pairs", "6000"],
            "default": ["--pairs", "300000"],
            "full": ["--pairs", "1000000"],
        },
        figures=export_figures,
    ),
    Benchmark(
        name="data_browser",
        script="data_browser.py",
        result_file="data_browser.json",
        scale_args={
            "smoke": [*comparisons(3000, True), "--repeat", "1"],
            "default": comparisons(100_000, True),
            "full": comparisons(1_000_000, True),
        },
        figures=browser_figures,
        postgres=True,
    ),
    Benchmark(
        name="train_throughput",
        script="train_throughput.py",
        result_file="train_throughput.json",
        scale_args={
            # The process-group comparison (a 2-process launch) is left to the larger scales:
            # its rows are not in the summary, and worker/launch.py has tests of its own.
            "smoke": ["--steps", "3", "--rows", "40", "--repeats", "1", "--processes", "1"],
            "default": ["--steps", "40", "--rows", "600", "--repeats", "2"],
            "full": [],  # the script's defaults: 150 steps, 2000 rows, 2 repeats
        },
        figures=train_figures,
        out_is_file=True,
    ),
)


# --- the machine ------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ram_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    raise RuntimeError("no MemTotal in /proc/meminfo")


def os_name() -> str:
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def postgres_version(url: str) -> str | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar_one())
    except Exception:  # unreachable: the description says so, the benchmarks will fail
        return None
    finally:
        engine.dispose()


def redis_version(url: str) -> str | None:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except Exception:  # not installed or not reachable: no benchmark needs it
        return None


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cuda_device() -> str | None:
    """The GPU's name, asking torch in a subprocess only where a driver is present (importing
    torch takes seconds, and the runner itself stays free of it)."""
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists():
        return None
    probe = "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    try:
        answer = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return None
    return answer.stdout.strip() or None


def git(*args: str) -> str | None:
    try:
        answer = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return answer.stdout.strip() if answer.returncode == 0 else None


def describe_machine(postgres_url: str, redis_url: str) -> dict[str, Any]:
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": ram_gb(),
        "os": os_name(),
        "kernel": platform.release(),
        "architecture": platform.machine(),
        "python": platform.python_version(),
        "postgresql": postgres_version(postgres_url),
        "redis": redis_version(redis_url),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "trl": package_version("trl"),
        "cuda_device": cuda_device(),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- running ----------------------------------------------------------------------------------


def kill_group(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the group is already gone
        os.killpg(pid, sig)


def reap(pid: int, deadline: float) -> tuple[int, Any] | None:
    """(wait status, rusage) of the child once it exits, or None at the deadline."""
    while True:
        found, status, usage = os.wait4(pid, os.WNOHANG)
        if found:
            return status, usage
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def stop(pid: int) -> tuple[int, Any] | None:
    """SIGINT to the group (a benchmark's `finally` drops its database), SIGKILL if that is
    not enough; then reap."""
    kill_group(pid, signal.SIGINT)
    reaped = reap(pid, time.monotonic() + SIGINT_GRACE_SECONDS)
    if reaped is None:
        kill_group(pid, signal.SIGKILL)
        reaped = reap(pid, time.monotonic() + 60)
    return reaped


def _default_sigint() -> None:
    """In the child, before the exec: SIGINT back to its default. A runner started in the
    background (`nohup`, `cmd &` in a script, a CI job) inherits SIGINT ignored, and an ignored
    signal stays ignored across exec, so the benchmark would never see the stop below and
    would be killed without dropping its database."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_process(command: list[str], env: dict[str, str], log: Path, timeout: int) -> Run:
    """Run one benchmark in its own session, stopping the whole group (the labeling loop's web
    server included) at the timeout."""
    run = Run(name="", script="", command=command, timeout_seconds=timeout, log=str(log))
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_sigint,
        )  # fmt: skip
        started = time.monotonic()
        try:
            reaped = reap(process.pid, started + timeout)
        except BaseException:
            # The runner itself is interrupted: its own session keeps the child from seeing
            # the terminal's Ctrl-C, so stop it here rather than leave it running.
            stop(process.pid)
            raise
        if reaped is None:
            reaped = stop(process.pid)
            run.error = f"timed out after {timeout} s"
        run.seconds = round(time.monotonic() - started, 2)
        # Anything it left behind in its group (a web server worker) goes too.
        kill_group(process.pid, signal.SIGKILL)
    if reaped is not None:
        status, usage = reaped
        process.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
        run.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)  # kilobytes on Linux
    return run


def log_tail(path: Path, characters: int = 2000) -> str:
    text = path.read_text(errors="replace")
    return text[-characters:].strip()


def merge_result(benchmark: Benchmark, produced: Path, out: Path) -> None:
    """Copy the script's JSON into the output folder; per-backend files keep other entries."""
    target = out / benchmark.result_file
    data = json.loads(produced.read_text())
    if benchmark.backend is not None and target.exists():
        saved = json.loads(target.read_text())
        data = {**saved, **data}
    target.write_text(json.dumps(data, indent=2) + "\n")


def run_benchmark(
    benchmark: Benchmark, scale: str, out: Path, postgres_url: str, timeout: int
) -> tuple[Run, list[Row]]:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"smiley-bench-{benchmark.name}-") as folder:
        scratch = Path(folder)
        command = benchmark.command(scale, scratch, postgres_url)
        env = {**os.environ, "SMILEY_BENCH_POSTGRES_URL": postgres_url, "PYTHONUNBUFFERED": "1"}
        before = load_average()
        run = run_process(command, env, logs / f"{benchmark.name}.log", timeout)
        run.name, run.script = benchmark.name, benchmark.script
        run.load_average_before, run.load_average_after = before, load_average()
        produced = scratch / benchmark.result_file
        rows: list[Row] = []
        if run.error is None and run.exit_code != 0:
            run.error = f"exit code {run.exit_code}: {log_tail(logs / f'{benchmark.name}.log')}"
        elif run.error is None and not produced.exists():
            run.error = f"exited 0 but wrote no {benchmark.result_file}"
        elif run.error is None:
            try:
                result = json.loads(produced.read_text())
                if benchmark.backend is not None:
                    result = result[benchmark.backend]
                rows = benchmark.figures(benchmark.name, result)
                merge_result(benchmark, produced, out)
                run.status = "ok"
            except Exception as error:  # whatever is wrong with one result, the rest run on
                run.error = f"unreadable {benchmark.result_file}: {error!r}"
                rows = []
    return run, rows


def select(only: Sequence[str]) -> list[Benchmark]:
    """Benchmarks named by --only: a benchmark's name, or a script's stem (agreement_scale is
    both backends)."""
    if not only:
        return list(BENCHMARKS)
    names = {name.strip() for part in only for name in part.split(",") if name.strip()}
    known = {b.name for b in BENCHMARKS} | {Path(b.script).stem for b in BENCHMARKS}
    if unknown := names - known:
        raise ValueError(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    return [b for b in BENCHMARKS if b.name in names or Path(b.script).stem in names]


# --- writing ----------------------------------------------------------------------------------


def number(value: float | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):  # counts, and rates the scripts round to whole numbers
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def short_error(error: str) -> str:
    """One line for the table: the error's kind and the exception its traceback ended with
    (the last unindented `name: message` line; SQLAlchemy adds a link after it)."""
    lines = error.strip().splitlines() or [""]
    if len(lines) == 1:
        return lines[0].replace("|", "\\|")[:300]
    raised = next((line for line in reversed(lines) if EXCEPTION.match(line)), lines[-1])
    return f"{lines[0].split(': ', 1)[0]}: {raised.strip()}".replace("|", "\\|")[:300]


def markdown(summary: dict[str, Any]) -> str:
    machine = summary["machine"]
    commit = (machine["git_commit"] or "unknown")[:10]
    if machine["git_dirty"]:
        commit += " with local changes"
    lines = [
        f"### Benchmarks, scale `{summary['scale']}` ({machine['date']})",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM; "
        f"{machine['os']}, kernel {machine['kernel']} ({machine['architecture']}); "
        f"Python {machine['python']}; PostgreSQL {machine['postgresql'] or 'unreachable'}; "
        f"Redis {machine['redis'] or 'unreachable'}; torch {machine['torch']}, "
        f"transformers {machine['transformers']}, TRL {machine['trl']}; "
        f"CUDA device: {machine['cuda_device'] or 'none'}. "
        "Load average (1/5/15 min) before "
        f"{' / '.join(map(str, machine['load_average_before']))}, after "
        f"{' / '.join(map(str, machine['load_average_after']))}. Commit {commit}.",
        "",
        "| benchmark | status | wall s | peak RSS (MB) | load before → after |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in summary["runs"]:
        status = run["status"] if run["error"] is None else f"failed: {short_error(run['error'])}"
        lines.append(
            f"| {run['name']} | {status} | {number(run['seconds'])} | "
            f"{number(run['peak_rss_mb'])} | "
            f"{run['load_average_before'][0]} → {run['load_average_after'][0]} |"
        )
    lines += [
        "",
        "| benchmark | figure | value | unit | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in summary["rows"]:
        met = {True: "met", False: "**not met**", None: "—"}[row["met"]]
        lines.append(
            f"| {row['benchmark']} | {row['figure']} | {number(row['value'])} | {row['unit']} | "
            f"{row['target'] or '—'} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=f"benchmarks: {', '.join(b.name for b in BENCHMARKS)}",
    )
    parser.add_argument("--scale", choices=SCALES, default="default")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these (comma-separated or repeated; agreement_scale means both backends)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--timeout", type=int, help="seconds per benchmark (default by scale)")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args(argv)
    try:
        chosen = select(args.only)
    except ValueError as error:
        parser.error(str(error))
    if args.timeout is not None and args.timeout < 1:
        parser.error("--timeout must be at least 1 second")
    timeout = args.timeout or TIMEOUTS[args.scale]

    args.out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    machine = describe_machine(args.postgres_url, args.redis_url)
    runs: list[Run] = []
    rows: list[Row] = []
    for benchmark in chosen:
        print(f"[bench] {benchmark.name} ({args.scale}) ...", flush=True)
        run, found = run_benchmark(benchmark, args.scale, args.out, args.postgres_url, timeout)
        runs.append(run)
        rows += found
        outcome = "ok" if run.error is None else f"FAILED: {short_error(run.error)}"
        print(f"[bench] {benchmark.name}: {outcome} in {run.seconds:.1f} s", flush=True)
    rows += agreement_ratio_rows(rows)
    # The load around the whole run says how far the figures can be trusted on a shared box.
    machine["load_average_before"], machine["load_average_after"] = load_before, load_average()
    summary = {
        "scale": args.scale,
        "command": ["bench/run_all.py", *(argv if argv is not None else sys.argv[1:])],
        "machine": machine,
        "runs": [asdict(run) for run in runs],
        "rows": [asdict(row) for row in rows],
        "failed": [run.name for run in runs if run.status != "ok"],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
