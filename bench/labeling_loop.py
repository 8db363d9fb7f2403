"""Benchmark: concurrent simulated labelers doing lease -> submit loops over HTTP.

Starts `smiley web` against a fresh PostgreSQL database, fills a comparison queue, and lets
N labelers (threads with their own keep-alive HTTP client and API token, no think time) work
until the queue is empty or --annotations labels were accepted. Reports throughput, p50/p99
latency of lease and submit, the two counts that must be 0 (tasks leased beyond their overlap,
accepted submissions missing from the database), and the CPU the server side spent per accepted
annotation: the web server's processes plus the PostgreSQL backends serving the bench database,
read from /proc over the labeling window (so other work on the machine does not count; the
machine's load average is reported beside it).

    .venv/bin/python bench/labeling_loop.py --labelers 64 --tasks 400 --overlap 3
    # the hot-path workload (issue 17): realistic text, 16 annotators, 1,000 labels
    .venv/bin/python bench/labeling_loop.py --labelers 16 --tasks 2000 --overlap 1 \
        --annotations 1000 --prompt-chars 300 --response-chars 600
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.db import make_engine, session_factory  # noqa: E402
from app.models import Assignment, AssignmentStatus, Comparison, Role, Task  # noqa: E402
from app.schemas.users import TokenCreate, UserCreate  # noqa: E402
from app.services import auth, users  # noqa: E402
from tests.factories import (  # noqa: E402
    make_comparison_tasks,
    make_project,
    make_queue,
    make_task,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SENTENCE = (
    "the model should answer the question plainly and cite what it knows while it keeps to "
    "the facts of the matter and says when it does not know something useful for the reader"
)
WORDS = SENTENCE.split(" ")

ADMIN_URL = os.environ.get(
    "SMILEY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def filler(seed: int, chars: int) -> str:
    """Text of about `chars` characters, different for every seed."""
    words: list[str] = []
    index = seed
    while sum(len(word) + 1 for word in words) < chars:
        words.append(WORDS[index % len(WORDS)])
        index = index * 7 + 3
    return " ".join(words)[:chars]


def make_realistic_tasks(db, queue, project, count: int, prompt_chars: int, response_chars: int):
    from app.models import Prompt, Response, ResponseSource

    for index in range(count):
        prompt = Prompt(
            project_id=project.id,
            messages=[{"role": "user", "content": f"{index}: " + filler(index, prompt_chars)}],
            source="bench",
            content_hash=f"bench-{index}",
        )
        db.add(prompt)
        db.flush()
        responses = [
            Response(
                prompt_id=prompt.id,
                content=filler(index * 4 + k, response_chars),
                source=ResponseSource.imported,
                source_name="bench",
            )
            for k in range(4)
        ]
        db.add_all(responses)
        db.flush()
        make_task(db, queue, prompt, responses)
    db.commit()


def grow_queue(db, queue, total: int) -> None:
    """More tasks in the queue, up to `total`, each showing the prompt and responses of one of
    the tasks already there (so the text stays realistic without storing it again)."""
    base = db.scalar(text("SELECT count(*) FROM tasks WHERE queue_id = :q"), {"q": queue.id})
    if total <= base:
        return
    last = db.scalar(text("SELECT max(id) FROM tasks"))
    db.execute(
        text(
            "INSERT INTO tasks (queue_id, prompt_id, priority, overlap, is_gold, held_slots, "
            "created_at) SELECT :q, t.prompt_id, 0, :overlap, false, 0, now() "
            "FROM generate_series(0, :n - 1) AS g JOIN (SELECT prompt_id, "
            "row_number() OVER (ORDER BY id) - 1 AS k FROM tasks WHERE queue_id = :q) AS t "
            "ON t.k = g % :base ORDER BY g"
        ),
        {"q": queue.id, "overlap": queue.overlap, "n": total - base, "base": base},
    )
    db.execute(
        text(
            "INSERT INTO task_responses (task_id, response_id, position) "
            "SELECT new.id, tr.response_id, tr.position FROM tasks AS new "
            "JOIN tasks AS old ON old.prompt_id = new.prompt_id AND old.id <= :last "
            "JOIN task_responses AS tr ON tr.task_id = old.id WHERE new.id > :last"
        ),
        {"last": last},
    )
    db.commit()


def add_history(db, project, assignments: int) -> None:
    """`assignments` submitted assignments by five former labelers, in a queue of their own
    (overlap 5), as a database that has been in use for a while holds."""
    if not assignments:
        return
    old = make_queue(db, project, name="finished queue", overlap=5, max_overlap=5)
    prompt = db.scalar(text("SELECT min(prompt_id) FROM tasks"))
    db.execute(
        text(
            "INSERT INTO tasks (queue_id, prompt_id, priority, overlap, is_gold, held_slots, "
            "created_at) SELECT :q, :p, 0, 5, false, 0, now() FROM generate_series(1, :n)"
        ),
        {"q": old.id, "p": prompt, "n": (assignments + 4) // 5},
    )
    former = []
    for index in range(5):
        user, _ = users.create_user(
            db, UserCreate(username=f"former{index}", role=Role.labeler, password="x" * 12)
        )
        former.append(user.id)
    db.execute(
        text(
            "INSERT INTO assignments (task_id, labeler_id, status, leased_at, lease_expires_at, "
            "finished_at, idle_seconds) SELECT t.id, u.id, 'submitted', "
            "now() - interval '2 hours', now() - interval '1 hour', "
            "now() - interval '90 minutes', 0 "
            "FROM tasks AS t CROSS JOIN unnest(CAST(:former AS integer[])) AS u(id) "
            "WHERE t.queue_id = :q LIMIT :n"
        ),
        {"q": old.id, "former": former, "n": assignments},
    )
    db.commit()


def process_stat(pid: int) -> tuple[float, int] | None:
    """User plus system CPU seconds of one process and when it started (clock ticks since
    boot), from /proc; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # utime, stime and starttime are fields 14, 15 and 22 of /proc/PID/stat (1-based, the
    # name being field 2).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(fields[19])


def boot_ticks_now() -> int:
    return int(float(Path("/proc/uptime").read_text().split()[0]) * CLOCK_TICKS)


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found.extend(process_tree(int(child)))
    return found


class CpuMeter:
    """CPU seconds of the web server's processes and of the PostgreSQL backends connected to
    the bench database, sampled every 0.1 s so that a backend that ends mid-run counts with
    what it had spent by its last sample."""

    def __init__(self, server_pid: int, admin, database: str) -> None:
        self.server_pid = server_pid
        self.admin = admin
        self.database = database
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self.window_start = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self) -> list[tuple[str, int]]:
        with self.admin.connect() as connection:
            backends = connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                {"name": self.database},
            ).scalars()
            own = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            database = [("postgres", pid) for pid in backends if pid != own]
        return [("web", pid) for pid in process_tree(self.server_pid)] + database

    def sample(self) -> None:
        for key in self._pids():
            found = process_stat(key[1])
            if found is None:
                continue
            seconds, started = found
            # A process started within the window counts from zero; one that existed before
            # it (a backend that connected to the database only now, say) from when it was
            # first seen, so nothing it spent before the window counts.
            self.first.setdefault(key, 0.0 if started >= self.window_start else seconds)
            self.last[key] = seconds

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self.sample()

    def start(self) -> None:
        self.window_start = boot_ticks_now()
        self.sample()
        self.thread.start()

    def finish(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        self.sample()
        spent = {"web": 0.0, "postgres": 0.0}
        for key, seconds in self.last.items():
            spent[key[0]] += seconds - self.first[key]
        return spent


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine so far (every core), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--annotations", type=int, default=0, help="stop after this many (0: empty the queue)"
    )
    parser.add_argument(
        "--prompt-chars", type=int, default=0, help="realistic text of this length (0: short)"
    )
    parser.add_argument("--response-chars", type=int, default=600)
    parser.add_argument(
        "--queue-tasks",
        type=int,
        default=0,
        help="grow the queue to this many tasks (the extra ones reuse the first --tasks' "
        "prompts and responses), to show a lease costs the same on a large queue",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="finished assignments already in the database (in another queue), to show a "
        "lease costs the same however much history there is",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"smiley_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    server = None
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        with session_factory(engine)() as db:
            project = make_project(db, "bench")
            queue = make_queue(db, project, overlap=args.overlap, max_overlap=args.overlap)
            if args.prompt_chars:
                make_realistic_tasks(
                    db, queue, project, args.tasks, args.prompt_chars, args.response_chars
                )
            else:
                make_comparison_tasks(db, queue, project, args.tasks)
            grow_queue(db, queue, args.queue_tasks)
            add_history(db, project, args.history)
            tokens = []
            for index in range(args.labelers):
                user, _ = users.create_user(
                    db,
                    UserCreate(username=f"bench{index:03d}", role=Role.labeler, password="x" * 12),
                )
                tokens.append(auth.create_api_token(db, user, TokenCreate(name="bench"))[1])
            queue_id = queue.id
        if args.queue_tasks or args.history:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "SMILEY_DATABASE_URL": url,
            "SMILEY_DATA_DIR": str(args.out / "data"),
            "SMILEY_SECRET_KEY": "bench-" + "k" * 40,
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.asgi:app",
                "--port",
                str(port),
                "--workers",
                str(args.web_workers),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        # Up to two minutes: a busy shared machine can take long to import the app.
        for _ in range(600):
            try:
                # The schema answers signed-in users only: a 200 means the app reads its database.
                schema = httpx.get(
                    f"{base}/api/v1/openapi.json",
                    headers={"Authorization": f"Bearer {tokens[0]}"},
                )
                if schema.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)

        lease_ms: list[float] = []
        submit_ms: list[float] = []
        accepted: list[int] = []
        failures: Counter[str] = Counter()
        lock = threading.Lock()
        enough = threading.Event()

        # One keep-alive client per labeler, each warmed with a request before the window: a
        # web process builds its routes on its first request (seconds of CPU), which is start-up
        # cost, not the labeling loop's.
        clients = [
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            for token in tokens
        ]
        for client in clients:
            client.get("/api/v1/me/queues").raise_for_status()

        def labeler(client: httpx.Client) -> None:
            # Not `with client`: httpx refuses to enter a client that has sent requests.
            try:
                while not enough.is_set():
                    started = time.perf_counter()
                    answer = client.post(f"/api/v1/queues/{queue_id}/lease")
                    elapsed = (time.perf_counter() - started) * 1000
                    if answer.status_code != 200:
                        with lock:
                            failures[f"lease {answer.status_code}"] += 1
                        continue
                    assignment = answer.json()["assignment"]
                    with lock:
                        lease_ms.append(elapsed)
                    if assignment is None:
                        return
                    ids = [r["id"] for r in assignment["responses"]]
                    body = {
                        "items": [
                            # Four 1-7 scores and a full ranking.
                            {"response_id": r, "rank": k + 1, "score": 7 - (k * 2 + r) % 7}
                            for k, r in enumerate(ids)
                        ],
                        "idempotency_key": f"bench-{assignment['id']:010d}",
                    }
                    for _attempt in range(5):
                        started = time.perf_counter()
                        done = client.post(
                            f"/api/v1/assignments/{assignment['id']}/comparison", json=body
                        )
                        elapsed = (time.perf_counter() - started) * 1000
                        if done.status_code == 201:
                            with lock:
                                submit_ms.append(elapsed)
                                accepted.append(done.json()["label_id"])
                                if args.annotations and len(accepted) >= args.annotations:
                                    enough.set()
                            break
                        with lock:
                            failures[f"submit {done.status_code}"] += 1
            finally:
                client.close()

        threads = [threading.Thread(target=labeler, args=(client,)) for client in clients]
        meter = CpuMeter(server.pid, admin, name)
        meter.start()
        machine_before = machine_cpu_seconds()
        load_before = os.getloadavg()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        machine_busy = machine_cpu_seconds() - machine_before
        load_after = os.getloadavg()
        spent = meter.finish()

        with session_factory(engine)() as db:
            per_task = Counter(
                db.scalars(
                    select(Assignment.task_id)
                    .join(Task, Task.id == Assignment.task_id)
                    .where(
                        Assignment.status == AssignmentStatus.submitted,
                        Task.queue_id == queue_id,
                    )
                )
            )
            stored = set(db.scalars(select(Comparison.id)))
        engine.dispose()
        result = {
            "benchmark": "labeling loop (lease -> submit over HTTP, PostgreSQL)",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "labelers": args.labelers,
            "tasks": args.tasks,
            "overlap": args.overlap,
            "web_workers": args.web_workers,
            "submissions": len(accepted),
            "wall_seconds": round(wall, 2),
            "submissions_per_second": round(len(accepted) / wall, 1),
            "lease_ms_p50": round(percentile(lease_ms, 0.5), 1),
            "lease_ms_p99": round(percentile(lease_ms, 0.99), 1),
            "submit_ms_p50": round(percentile(submit_ms, 0.5), 1),
            "submit_ms_p99": round(percentile(submit_ms, 0.99), 1),
            "over_overlap_tasks": sum(1 for count in per_task.values() if count > args.overlap),
            "lost_submissions": len(set(accepted) - stored),
            "unfinished_tasks": max(args.tasks, args.queue_tasks)
            - sum(1 for c in per_task.values() if c == args.overlap),
            "http_failures": dict(failures),
            "annotations_asked": args.annotations,
            "queue_tasks": max(args.tasks, args.queue_tasks),
            "history_assignments": args.history,
            "prompt_chars": args.prompt_chars,
            "response_chars": args.response_chars if args.prompt_chars else 0,
            "web_cpu_ms_per_annotation": round(spent["web"] * 1000 / max(1, len(accepted)), 1),
            "postgres_cpu_ms_per_annotation": round(
                spent["postgres"] * 1000 / max(1, len(accepted)), 1
            ),
            "server_cpu_ms_per_annotation": round(
                (spent["web"] + spent["postgres"]) * 1000 / max(1, len(accepted)), 1
            ),
            # Everything the machine did meanwhile, the bench's own clients and other people's
            # work included: context for the figure above, not part of it.
            "machine_busy_cpu_ms_per_annotation": round(
                machine_busy * 1000 / max(1, len(accepted)), 1
            ),
            "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "labeling_loop.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
