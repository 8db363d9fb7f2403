"""Benchmark: concurrent simulated labelers doing lease -> submit loops over HTTP.

Starts `smiley web` against a fresh PostgreSQL database, fills a comparison queue, and lets
N labelers (threads with their own HTTP client and API token) work until the queue is empty.
Reports throughput, p50/p99 latency of lease and submit, and the two counts that must be 0:
tasks leased beyond their overlap and accepted submissions missing from the database.

    .venv/bin/python bench/labeling_loop.py --labelers 64 --tasks 400 --overlap 3
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
from app.models import Assignment, AssignmentStatus, Comparison, Role  # noqa: E402
from app.schemas.users import TokenCreate, UserCreate  # noqa: E402
from app.services import auth, users  # noqa: E402
from tests.factories import make_comparison_tasks, make_project, make_queue  # noqa: E402

ADMIN_URL = os.environ.get(
    "SMILEY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelers", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--web-workers", type=int, default=2)
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
            make_comparison_tasks(db, queue, project, args.tasks)
            tokens = []
            for index in range(args.labelers):
                user, _ = users.create_user(
                    db,
                    UserCreate(username=f"bench{index:03d}", role=Role.labeler, password="x" * 12),
                )
                tokens.append(auth.create_api_token(db, user, TokenCreate(name="bench"))[1])
            queue_id = queue.id

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
        for _ in range(100):
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

        def labeler(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                while True:
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
                            {"response_id": r, "rank": k + 1, "score": 7 - k}
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
                            break
                        with lock:
                            failures[f"submit {done.status_code}"] += 1

        threads = [threading.Thread(target=labeler, args=(token,)) for token in tokens]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started

        with session_factory(engine)() as db:
            per_task = Counter(
                db.scalars(
                    select(Assignment.task_id).where(
                        Assignment.status == AssignmentStatus.submitted
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
            "unfinished_tasks": args.tasks - sum(1 for c in per_task.values() if c == args.overlap),
            "http_failures": dict(failures),
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
