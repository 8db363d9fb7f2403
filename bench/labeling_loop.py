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
    # a realistic crowd: 500 labelers who each think about 20 s per task (about 25 labels/s),
    # measured over a fixed window once every labeler holds a task
    .venv/bin/python bench/labeling_loop.py --labelers 500 --think-seconds 20 \
        --window-seconds 120 --tasks 6000 --overlap 1 --prompt-chars 300 --response-chars 600

With --think-seconds the labelers are coroutines on one event loop (asyncio and httpx, one
client whose pool keeps a keep-alive connection per labeler): 500 threads would cost the
machine more than the server being measured. A labeler leases, thinks (uniformly 0.5 to 1.5
times the think time), submits and leases again; they start spread over one think time, and
the window opens once that has passed, so it measures the steady state. Beside the clients'
latencies it gives the server's own (its request histograms, read from /metrics before and
after the window: bounds at the buckets' resolution), since 500 labelers on one event loop can
add their own delay to what a client measures. Percentiles leave out
an empty lease (the queue ran dry for that labeler: its last request, not labeling work). The
report also gives the SQL statements of one lease and one submit (counted in-process on the
bench database before the run, the token check left out as in
tests/api/test_labeling_statements.py) and the machine's 1-minute load before, after and at
its highest during the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
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
        self.load_max = 0.0
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
            self.load_max = max(self.load_max, os.getloadavg()[0])

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


def count_statements(url: str, queue_id: int, token: str, data_dir: Path) -> dict[str, object]:
    """One lease and one submit through the app in this process, on the bench database, with
    the SQL statements each sent (the token check, cached in the server, left out)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from app.main import create_app
    from app.settings import Settings

    engine = make_engine(url)
    app = create_app(
        Settings(data_dir=data_dir, database_url=url, secret_key="bench-" + "k" * 40), engine
    )
    ran: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        flat = " ".join(statement.split())
        if " FROM api_tokens JOIN users " not in flat:
            ran.append(flat[:200])

    headers = {"Authorization": f"Bearer {token}"}
    try:
        with TestClient(app) as client:
            client.get("/api/v1/me/queues", headers=headers).raise_for_status()
            event.listen(engine, "before_cursor_execute", count)
            leased = client.post(f"/api/v1/queues/{queue_id}/lease", headers=headers)
            lease = list(ran)
            ran.clear()
            assignment = leased.json()["assignment"]
            done = client.post(
                f"/api/v1/assignments/{assignment['id']}/comparison",
                json=judgement(assignment),
                headers=headers,
            )
            done.raise_for_status()
            submit = list(ran)
            event.remove(engine, "before_cursor_execute", count)
    finally:
        engine.dispose()
    return {
        "statements_per_lease": len(lease),
        "statements_per_submit": len(submit),
        "lease_statements": lease,
        "submit_statements": submit,
    }


def judgement(assignment: dict) -> dict:
    ids = [r["id"] for r in assignment["responses"]]
    return {
        "items": [
            # Four 1-7 scores and a full ranking.
            {"response_id": r, "rank": k + 1, "score": 7 - (k * 2 + r) % 7}
            for k, r in enumerate(ids)
        ],
        "idempotency_key": f"bench-{assignment['id']:010d}",
    }


class Crowd:
    """Labelers who think between tasks, as coroutines (see the module's docstring)."""

    def __init__(
        self, base: str, tokens: list[str], queue_id: int, think: float, admin_token: str
    ) -> None:
        self.base = base
        self.admin_token = admin_token
        # The server's latency histograms over the window (from /metrics), by request kind.
        self.server_latency: dict[str, dict[float, float]] = {}
        self.tokens = tokens
        self.queue_id = queue_id
        self.think = think
        self.lease_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.accepted: list[int] = []
        self.all_accepted: list[int] = []
        self.empty_leases = 0
        self.failures: Counter[str] = Counter()
        self.measuring = False
        self.ending = False

    async def labeler(self, client: httpx.AsyncClient, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        await asyncio.sleep(random.uniform(0, self.think))
        while not self.ending:
            started = time.perf_counter()
            answer = await client.post(f"/api/v1/queues/{self.queue_id}/lease", headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                self.failures[f"lease {answer.status_code}"] += 1
                await asyncio.sleep(1)
                continue
            assignment = answer.json()["assignment"]
            if assignment is None:
                self.empty_leases += 1
                return
            if self.measuring:
                self.lease_ms.append(elapsed)
            await asyncio.sleep(self.think * random.uniform(0.5, 1.5))
            if self.ending:
                return
            for _attempt in range(5):
                started = time.perf_counter()
                done = await client.post(
                    f"/api/v1/assignments/{assignment['id']}/comparison",
                    json=judgement(assignment),
                    headers=headers,
                )
                elapsed = (time.perf_counter() - started) * 1000
                if done.status_code == 201:
                    label = done.json()["label_id"]
                    self.all_accepted.append(label)
                    if self.measuring:
                        self.submit_ms.append(elapsed)
                        self.accepted.append(label)
                    break
                self.failures[f"submit {done.status_code}"] += 1
                await asyncio.sleep(1)

    async def run(self, window: float, meter: CpuMeter) -> tuple[float, float, float]:
        """Runs the crowd; measures over `window` seconds once one think time has passed.
        Returns the window's wall seconds, the machine's busy CPU seconds and its load before."""
        # One client whose pool keeps a connection per labeler: an httpx client per labeler
        # builds its own TLS context, and 500 of them took minutes before the first request.
        client = httpx.AsyncClient(
            base_url=self.base,
            timeout=120,
            limits=httpx.Limits(
                max_connections=len(self.tokens), max_keepalive_connections=len(self.tokens)
            ),
        )
        crowd = [asyncio.create_task(self.labeler(client, token)) for token in self.tokens]
        await asyncio.sleep(self.think * 1.5)
        meter.start()
        machine_before = machine_cpu_seconds()
        load_before = os.getloadavg()[0]
        latency_before = await self.scrape_latency(client)
        self.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(window)
        self.measuring = False
        wall = time.perf_counter() - started
        machine_busy = machine_cpu_seconds() - machine_before
        latency_after = await self.scrape_latency(client)
        self.server_latency = {
            kind: {
                bound: count - latency_before.get(kind, {}).get(bound, 0.0)
                for bound, count in buckets.items()
            }
            for kind, buckets in latency_after.items()
        }
        self.ending = True
        for outcome in await asyncio.gather(*crowd, return_exceptions=True):
            if isinstance(outcome, BaseException):
                self.failures[f"labeler stopped: {type(outcome).__name__}: {outcome}"] += 1
        await client.aclose()
        return wall, machine_busy, load_before

    async def scrape_latency(self, client: httpx.AsyncClient) -> dict[str, dict[float, float]]:
        """The web processes' cumulative latency buckets (upper bound in seconds: requests
        answered within it) for leases and submits, from /metrics."""
        answer = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        answer.raise_for_status()
        found: dict[str, dict[float, float]] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                if sample.name != "smiley_http_request_duration_seconds_bucket":
                    continue
                route = sample.labels.get("route", "")
                kind = (
                    "lease"
                    if route == "/api/v1/queues/{queue_id}/lease"
                    else "submit"
                    if route == "/api/v1/assignments/{assignment_id}/comparison"
                    else None
                )
                if kind is not None:
                    bound = float(sample.labels["le"])
                    found.setdefault(kind, {})
                    found[kind][bound] = found[kind].get(bound, 0.0) + sample.value
        return found


def server_percentile(buckets: dict[float, float], share: float) -> float | None:
    """The smallest bucket bound (ms) within which `share` of the requests were answered, by
    the server's own clock: an upper bound of that percentile, at the buckets' resolution."""
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= share * total:
            return bound * 1000
    return None


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
    parser.add_argument(
        "--think-seconds",
        type=float,
        default=0,
        help="each labeler thinks this long (on average) per task: the realistic-crowd mode",
    )
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=120,
        help="with --think-seconds: how long the measured window lasts",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--name", default="labeling_loop", help="the result file's name")
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
            # Labelers sign in with tokens here: one password hash for all of them keeps the
            # set-up of 500 labelers from taking minutes of key stretching.
            hashed = users.hash_password("x" * 12)
            users.hash_password = lambda _password: hashed
            tokens = []
            for index in range(args.labelers + 1):
                user, _ = users.create_user(
                    db,
                    UserCreate(username=f"bench{index:03d}", role=Role.labeler, password="x" * 12),
                )
                tokens.append(auth.create_api_token(db, user, TokenCreate(name="bench"))[1])
            # An admin's token reads /metrics: the server's own latency of each request.
            admin_user, _ = users.create_user(
                db, UserCreate(username="benchadmin", role=Role.admin, password="x" * 12)
            )
            admin_token = auth.create_api_token(db, admin_user, TokenCreate(name="bench"))[1]
            queue_id = queue.id
        if args.queue_tasks or args.history:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM ANALYZE"))
        # The last labeler's token counts the statements, and labels nothing in the run.
        statements = count_statements(url, queue_id, tokens.pop(), args.out / "data")

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # The web processes add up their request metrics in this folder (as `smiley web`
        # sets up), so one scrape of /metrics covers every process.
        metrics_dir = args.out / "data" / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
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

        if args.think_seconds:
            crowd = Crowd(base, tokens, queue_id, args.think_seconds, admin_token)
            meter = CpuMeter(server.pid, admin, name)
            wall, machine_busy, load_before_1m = asyncio.run(crowd.run(args.window_seconds, meter))
            load_after = os.getloadavg()
            spent = meter.finish()
            write_result(
                args,
                engine,
                queue_id,
                statements,
                spent=spent,
                wall=wall,
                machine_busy=machine_busy,
                loads=(load_before_1m, load_after[0], meter.load_max),
                lease_ms=crowd.lease_ms,
                submit_ms=crowd.submit_ms,
                accepted=crowd.accepted,
                every_accepted=crowd.all_accepted,
                empty_leases=crowd.empty_leases,
                failures=crowd.failures,
                server_latency=crowd.server_latency,
            )
            return

        lease_ms: list[float] = []
        submit_ms: list[float] = []
        accepted: list[int] = []
        empty_leases = [0]
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
                    if assignment is None:
                        # The queue ran dry for this labeler: not a lease, left out.
                        with lock:
                            empty_leases[0] += 1
                        return
                    with lock:
                        lease_ms.append(elapsed)
                    body = judgement(assignment)
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

        write_result(
            args,
            engine,
            queue_id,
            statements,
            spent=spent,
            wall=wall,
            machine_busy=machine_busy,
            loads=(load_before[0], load_after[0], meter.load_max),
            lease_ms=lease_ms,
            submit_ms=submit_ms,
            accepted=accepted,
            every_accepted=accepted,
            empty_leases=empty_leases[0],
            failures=failures,
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_result(
    args: argparse.Namespace,
    engine,
    queue_id: int,
    statements: dict[str, object],
    *,
    spent: dict[str, float],
    wall: float,
    machine_busy: float,
    loads: tuple[float, float, float],
    lease_ms: list[float],
    submit_ms: list[float],
    accepted: list[int],
    every_accepted: list[int],
    empty_leases: int,
    failures: Counter[str],
    server_latency: dict[str, dict[float, float]] | None = None,
) -> None:
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
    labels = max(1, len(accepted))
    result = {
        "benchmark": "labeling loop (lease -> submit over HTTP, PostgreSQL)",
        "mode": (
            f"realistic crowd: {args.think_seconds:g} s think time, "
            f"{args.window_seconds:g} s window"
            if args.think_seconds
            else "closed loop, no think time"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "labelers": args.labelers,
        "think_seconds": args.think_seconds,
        "tasks": args.tasks,
        "overlap": args.overlap,
        "web_workers": args.web_workers,
        "submissions": len(accepted),
        "wall_seconds": round(wall, 2),
        "submissions_per_second": round(len(accepted) / wall, 1),
        "lease_ms_p50": round(percentile(lease_ms, 0.5), 1),
        "lease_ms_p95": round(percentile(lease_ms, 0.95), 1),
        "lease_ms_p99": round(percentile(lease_ms, 0.99), 1),
        "submit_ms_p50": round(percentile(submit_ms, 0.5), 1),
        "submit_ms_p95": round(percentile(submit_ms, 0.95), 1),
        "submit_ms_p99": round(percentile(submit_ms, 0.99), 1),
        **server_figures(server_latency),
        "leases_timed": len(lease_ms),
        "empty_leases_left_out": empty_leases,
        "over_overlap_tasks": sum(1 for count in per_task.values() if count > args.overlap),
        "lost_submissions": len(set(every_accepted) - stored),
        "unfinished_tasks": max(args.tasks, args.queue_tasks)
        - sum(1 for c in per_task.values() if c == args.overlap),
        "http_failures": dict(failures),
        "annotations_asked": args.annotations,
        "queue_tasks": max(args.tasks, args.queue_tasks),
        "history_assignments": args.history,
        "prompt_chars": args.prompt_chars,
        "response_chars": args.response_chars if args.prompt_chars else 0,
        "web_cpu_ms_per_annotation": round(spent["web"] * 1000 / labels, 1),
        "postgres_cpu_ms_per_annotation": round(spent["postgres"] * 1000 / labels, 1),
        "server_cpu_ms_per_annotation": round(
            (spent["web"] + spent["postgres"]) * 1000 / labels, 1
        ),
        # Everything the machine did meanwhile, the bench's own clients and other people's
        # work included: context for the figure above, not part of it.
        "machine_busy_cpu_ms_per_annotation": round(machine_busy * 1000 / labels, 1),
        "load_average_1m_before_after": [round(loads[0], 2), round(loads[1], 2)],
        "load_average_1m_max": round(loads[2], 2),
        **statements,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def server_figures(latency: dict[str, dict[float, float]] | None) -> dict[str, object]:
    """The server's own p95 and p99 bounds and its share of answers within 100 ms (the crowd
    mode reads them from /metrics): the client's figures above also hold the time its own
    event loop took to see each answer, with 500 labelers on one loop beside the server."""
    if not latency:
        return {}
    figures: dict[str, object] = {}
    for kind in ("lease", "submit"):
        buckets = latency.get(kind, {})
        total = buckets.get(float("inf"), 0.0)
        figures[f"server_{kind}_ms_p95_at_most"] = server_percentile(buckets, 0.95)
        figures[f"server_{kind}_ms_p99_at_most"] = server_percentile(buckets, 0.99)
        figures[f"server_{kind}_share_within_100ms"] = (
            round(buckets.get(0.1, 0.0) / total, 4) if total else None
        )
        figures[f"server_{kind}_requests"] = int(total)
    return figures


if __name__ == "__main__":
    main()
