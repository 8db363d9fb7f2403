"""Benchmark: the data browser's pages and API at a million comparisons on PostgreSQL.

Makes a database of its own on the given PostgreSQL server (dropped afterwards), migrates it,
and fills it in SQL with generate_series (no row goes through Python): one project, 200
labelers, 4 queues, N/3 prompts each with 2 imported responses and one comparison task of
overlap 3, N comparisons of 2 items each (1 in 50 flagged "hallucination"; 1 in 100 tasks
gold; 1 in 1,000 prompts mentions "zebra"; 1 in 7 comparisons ranks its pair the other way,
so about a third of tasks disagree). Ids follow time, as submissions do.

Then times, through the real app (FastAPI TestClient, a signed-in admin), each request a few
times after one warm-up, and reports the median and slowest wall-clock milliseconds and the
process's CPU seconds per request:

- labels: the first page, a filtered page (labeler + queue + flag), a deep keyset page (the
  cursor of the 500,000th comparison), searches of a rare word ("zebra"), a common one
  ("photosynthesis", 1 prompt in 11), one in every prompt ("prompt") and one found nowhere;
- the HTML page /projects/{id}/data for the first page and the filtered one;
- prompt search (in prompts or responses) of the same rare and common words, "answer" (a word
  of every response) and a word found nowhere.

Results go to bench/results/data_browser.json.

    .venv/bin/python bench/data_browser.py
    .venv/bin/python bench/data_browser.py --comparisons 3000 --out /tmp/results
    .venv/bin/python bench/data_browser.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import migrate  # noqa: E402
from app.db import make_engine, session_factory  # noqa: E402
from app.main import create_app  # noqa: E402
from app.models import Role  # noqa: E402
from app.schemas.users import TokenCreate, UserCreate  # noqa: E402
from app.services import auth, users  # noqa: E402
from app.settings import Settings  # noqa: E402

RESULT_FILE = "data_browser.json"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench password 1234"
TARGET_MS = 300
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')

# One statement per table; :n is the number of comparisons, :p the number of prompts.
FILL = [
    """INSERT INTO projects (id, name, description, label_schema, is_archived, updated_at,
        created_at)
       VALUES (1, 'Bench', '', '{"flags": [{"key": "hallucination", "label": "Made up"}]}',
        false, now(), now())""",
    """INSERT INTO users (id, username, display_name, password_hash, role, is_active,
        must_change_password, updated_at, created_at)
       SELECT 1000 + g, 'labeler' || g, '', 'x', 'labeler', true, false, now(), now()
       FROM generate_series(1, 200) g""",
    """INSERT INTO guideline_versions (id, project_id, version, body, note, created_at)
       SELECT g, 1, g, 'Be helpful.', '', now() FROM generate_series(1, 3) g""",
    """INSERT INTO queues (id, project_id, name, kind, overlap, max_overlap, priority,
        lease_seconds, max_active_leases, open_to_all, is_paused, created_at)
       SELECT g, 1, 'Queue ' || g, 'comparison', 3, 3, 0, 600, 3, true, false, now()
       FROM generate_series(1, 4) g""",
    """INSERT INTO prompts (id, project_id, messages, category, source, content_hash,
        created_at)
       SELECT g, 1,
        jsonb_build_array(jsonb_build_object('role', 'user', 'content',
          (ARRAY['Explain', 'Write a poem about', 'Summarize', 'List facts on', 'Compare'])
            [1 + g % 5] || ' ' ||
          (ARRAY['photosynthesis', 'rivers', 'the moon', 'tax law', 'bread', 'chess',
                 'volcanoes', 'jazz', 'bees', 'glass', 'ships'])[1 + (g * 7) % 11] ||
          CASE WHEN g % 1000 = 0 THEN ' and a zebra' ELSE '' END || ' (prompt ' || g || ')')),
        (ARRAY['generation', 'open_qa', 'brainstorming', 'chat', 'rewrite', 'summarization',
               'classification', 'closed_qa', 'extraction', 'other'])[1 + g % 10],
        'import:bench', md5(g::text),
        timestamptz '2024-01-01' + (g * 3) * (interval '90 days' / :n)
       FROM generate_series(1, :p) g""",
    """INSERT INTO responses (id, prompt_id, content, source, source_name, created_at)
       SELECT g, (g + 1) / 2, 'Answer ' || g || ' about the question.', 'import', 'bench',
        timestamptz '2024-01-01'
       FROM generate_series(1, 2 * :p) g""",
    """INSERT INTO tasks (id, queue_id, prompt_id, priority, overlap, is_gold, created_at)
       SELECT g, 1 + g % 4, g, 0, 3, g % 100 = 0, timestamptz '2024-01-01'
       FROM generate_series(1, :p) g""",
    """INSERT INTO comparisons (id, task_id, prompt_id, labeler_id, source, source_name,
        guideline_version_id, all_unacceptable, comment, time_spent_seconds, created_at)
       SELECT c, (c + 2) / 3, (c + 2) / 3, 1001 + (c::bigint * 7919) % 200, 'labeler', '',
        1 + (3 * c) / (:n + 1), false,
        CASE WHEN c % 10 = 0 THEN 'Both are fine.' ELSE '' END, 30 + c % 60,
        timestamptz '2024-01-01' + c * (interval '90 days' / :n)
       FROM generate_series(1, :n) c""",
    """INSERT INTO comparison_items (comparison_id, response_id, score, rank, flags, flag_note)
       SELECT c, 2 * ((c + 2) / 3) - 1 + side,
        -- Every 7th comparison ranks its pair the other way: a third of tasks disagree.
        CASE WHEN c % 7 = 0 THEN 3 + 3 * side ELSE 6 - 3 * side END,
        CASE WHEN c % 7 = 0 THEN 2 - side ELSE 1 + side END,
        CASE WHEN side = 0 AND c % 50 = 0 THEN '["hallucination"]'::jsonb ELSE '[]'::jsonb END,
        ''
       FROM generate_series(1, :n) c, generate_series(0, 1) side""",
]
SEQUENCES = ["projects", "users", "guideline_versions", "queues", "prompts", "responses"]
SEQUENCES += ["tasks", "comparisons"]


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SystemExit(f"--database-url must be postgresql+psycopg://..., not {url!r}")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"smiley_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(url: str, comparisons: int) -> dict[str, Any]:
    prompts = -(-comparisons // 3)
    migrate.upgrade(url)
    started = time.perf_counter()
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in FILL:
            connection.execute(text(statement), {"n": comparisons, "p": prompts})
        # Each task's stored agreement, as every submit keeps it, by the migration's own SQL.
        connection.execute(text(task_agreement_backfill()))
        for table in SEQUENCES:
            connection.execute(
                text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return {
        "comparisons": comparisons,
        "prompts": prompts,
        "seconds": round(time.perf_counter() - started, 2),
    }


def task_agreement_backfill() -> str:
    """The SQL with which migration 0009 fills task_agreements for comparisons already made."""
    path = ROOT / "migrations" / "versions" / "0009_keep_each_comparison_tasks_agreement.py"
    spec = importlib.util.spec_from_file_location("task_agreement_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL)


def signed_in(client: TestClient, url: str) -> dict[str, str]:
    """An admin with a browser session on `client`, and a Bearer header for the API."""
    engine = make_engine(url)
    with session_factory(engine)() as db:
        admin, _ = users.create_user(
            db, UserCreate(username="bench-admin", role=Role.admin, password=PASSWORD)
        )
        _, token = auth.create_api_token(db, admin, TokenCreate(name="bench"))
        db.commit()
    engine.dispose()
    page = client.get("/login")
    found = CSRF_INPUT.search(page.text)
    assert found, "no CSRF token on the login page"
    answer = client.post(
        "/login",
        data={"username": "bench-admin", "password": PASSWORD, "csrf_token": found.group(1)},
    )
    assert answer.status_code == 303, answer.text
    return {"Authorization": f"Bearer {token}"}


def timed(
    client: TestClient, path: str, params: dict[str, Any], headers: dict[str, str], repeat: int
) -> dict[str, Any]:
    client.get(path, params=params, headers=headers)  # warm-up: plans, caches, route build
    walls, cpus = [], []
    answer = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        answer = client.get(path, params=params, headers=headers)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append(time.process_time() - cpu)
        assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
    assert answer is not None
    rows = (
        len(answer.json()["items"])
        if answer.headers["content-type"].startswith("application/json")
        else answer.text.count('data-testid="data-row"')
    )
    return {
        "path": path,
        "params": params,
        "rows": rows,
        "median_ms": round(statistics.median(walls), 1),
        "max_ms": round(max(walls), 1),
        "cpu_seconds_per_request": round(statistics.median(cpus), 4),
        "load_average": round(os.getloadavg()[0], 2),
    }


def run(url: str, comparisons: int, repeat: int) -> dict[str, Any]:
    built = fill(url, comparisons)
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder),
            database_url=url,
            secret_key="bench-secret-key-" + "x" * 32,
            task_events_record=False,
        )
        with TestClient(create_app(settings), follow_redirects=False) as client:
            api = signed_in(client, url)
            labels = "/api/v1/projects/1/labels"
            prompt_search = "/api/v1/projects/1/prompt-search"
            deep_cursor = max(1, comparisons // 2)
            cases = {
                "labels_first_page": (labels, {}),
                "labels_filtered": (
                    labels,
                    {"labeler_id": 1001, "queue_id": 4, "flag": "hallucination"},
                ),
                # Nothing matches: the whole project is read to say so (the worst case).
                "labels_filtered_none": (labels, {"labeler_id": 1001, "queue_id": 2}),
                "labels_deep_keyset_page": (labels, {"cursor": deep_cursor}),
                "labels_filtered_deep": (labels, {"labeler_id": 1001, "cursor": deep_cursor}),
                "labels_by_day": (labels, {"since": "2024-02-01", "until": "2024-02-01"}),
                "labels_gold": (labels, {"gold": "true"}),
                "labels_search_rare": (labels, {"search": "zebra"}),
                "labels_search_common": (labels, {"search": "photosynthesis"}),
                "labels_search_every_prompt": (labels, {"search": "prompt"}),
                "labels_search_none": (labels, {"search": "nowhere"}),
                "prompts_search_rare": (prompt_search, {"search": "zebra"}),
                "prompts_search_common": (prompt_search, {"search": "photosynthesis"}),
                # In every response: the index finds every prompt, the newest are read instead.
                "prompts_search_every_response": (prompt_search, {"search": "answer"}),
                # Found nowhere: every prompt of the project is read to say so.
                "prompts_search_none": (prompt_search, {"search": "nowhere"}),
                # The task's stored agreement (every 7th comparison disagrees).
                "labels_agreement_below": (labels, {"agreement_below": "0.5"}),
                "labels_agreement_below_deep": (
                    labels,
                    {"agreement_below": "0.5", "cursor": deep_cursor},
                ),
                "review_queue": ("/api/v1/projects/1/review-queue", {}),
                "page_first": ("/projects/1/data", {}),
                "page_filtered": (
                    "/projects/1/data",
                    {"labeler_id": "1001", "flag": "hallucination"},
                ),
                "page_search": ("/projects/1/data", {"search": "zebra"}),
            }
            requests = {
                name: timed(client, path, params, api, repeat)
                for name, (path, params) in cases.items()
            }
    slowest = max(result["median_ms"] for result in requests.values())
    return {
        "build": built,
        "requests": requests,
        "target": {"ms": TARGET_MS, "slowest_median_ms": slowest, "met": slowest < TARGET_MS},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--comparisons", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--note", default="", help="kept with the results, e.g. what else ran")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.comparisons < 3:
        parser.error("--comparisons must be at least 3")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    with fresh_database(args.database_url) as url:
        measured = run(url, args.comparisons, args.repeat)
    result = {
        "benchmark": "data browser pages and API on PostgreSQL",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "note": args.note,
        **measured,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
