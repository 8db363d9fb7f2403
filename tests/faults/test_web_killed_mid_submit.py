"""kill -9 of the web process while labelers submit: no label lost, none stored twice.

Four labelers (two on a comparison queue, two on a demonstration queue) lease and submit over
the JSON API, each label with an idempotency key, repeating the same request after a dropped
connection or a 5xx. Meanwhile the server is killed with SIGKILL again and again and started on
the same port. At the end every key a client meant to submit is stored exactly once, and each
comparison's pairs were expanded exactly once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import Assignment, AssignmentStatus, Comparison, Demonstration, Pair, QueueKind
from tests.conftest import (
    MigratedDatabases,
    make_token,
    make_user,
)
from tests.factories import make_comparison_tasks, make_project, make_prompt, make_queue, make_task
from tests.faults.conftest import WebServer

# One group: each starts private servers on free ports and times windows of a few seconds.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]

API = "/api/v1"
COMPARISON_TASKS = 20
DEMONSTRATION_TASKS = 20
RESPONSES_EACH = 4  # a full ranking of 4 responses expands into 6 pairs
PAIRS_EACH = RESPONSES_EACH * (RESPONSES_EACH - 1) // 2
KILLS = 6
LABELS_BETWEEN_KILLS = 5  # 6 kills spread over the 40 labels
GIVE_UP_SECONDS = 90


@dataclass
class Client:
    """One labeler's loop, counting what the faults did to it."""

    base_url: str
    username: str
    token: str
    queue_id: int
    kind: str
    keys: list[str] = field(default_factory=list)
    submitted: int = 0
    replayed: int = 0
    retries: int = 0
    submit_retries: int = 0
    lease_cap_hits: int = 0
    last_body: tuple[str, dict[str, Any]] | None = None
    submitting: bool = False  # a label is on its way: the moment the kills aim for
    error: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        allowed: tuple[int, ...] = (),
    ) -> Any:
        """Sends the same request until the server answers it; a dropped connection or a 5xx
        (the server died under it or is starting) is repeated. Returns the JSON of a success
        or of an error status in `allowed` (None for those); any other error fails."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while True:
            try:
                answer = httpx.request(
                    method,
                    self.base_url + API + path,
                    json=body,
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=10,
                )
            except httpx.TransportError:
                pass
            else:
                if answer.status_code in allowed:
                    return None
                if answer.status_code < 500:
                    assert answer.status_code < 400, f"{method} {path}: {answer.text}"
                    return answer.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} never got an answer")
            self.retries += 1
            if body is not None and "idempotency_key" in body:
                self.submit_retries += 1
            time.sleep(0.1)

    def label(self, assignment: dict[str, Any], key: str) -> dict[str, Any]:
        if self.kind == "comparison":
            ids = [response["id"] for response in assignment["responses"]]
            return {
                "items": [
                    {"response_id": response_id, "score": 7 - rank, "rank": rank}
                    for rank, response_id in enumerate(ids, start=1)
                ],
                "idempotency_key": key,
            }
        return {
            "messages": [{"role": "assistant", "content": f"answer from {self.username}"}],
            "idempotency_key": key,
        }

    def run(self) -> None:
        try:
            while True:
                # A lease whose answer was lost to a kill is still ours: finish it first.
                held = self.call("GET", f"/assignments?queue_id={self.queue_id}")
                if held:
                    assignment = held[0]
                else:
                    # 409: leases whose answers were lost already fill the cap; look again.
                    leased = self.call("POST", f"/queues/{self.queue_id}/lease", allowed=(409,))
                    if leased is None:
                        self.lease_cap_hits += 1
                        continue
                    assignment = leased["assignment"]
                    if assignment is None:
                        return
                # The key is fixed by the assignment, so a retry after any failure repeats it.
                key = f"{self.username}-{assignment['id']}"
                body = self.label(assignment, key)
                self.keys.append(key)
                path = f"/assignments/{assignment['id']}/{self.kind}"
                self.submitting = True
                result = self.call("POST", path, body)
                self.submitting = False
                self.last_body = (path, body)
                self.submitted += 1
                self.replayed += int(result["replayed"])
                if self.kind == "comparison":
                    assert result["pairs"] == PAIRS_EACH, result
        except Exception as error:  # reported by the test, which fails on it
            self.error = f"{self.username}: {error!r}"


@pytest.fixture
def database_url(migrated_databases: MigratedDatabases) -> Iterator[str]:
    url = migrated_databases.postgres("smiley_fault_web")
    try:
        yield url
    finally:
        migrated_databases.drop_postgres(url)


def test_kill_9_of_the_web_app_loses_and_duplicates_no_label(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    with Session(engine, expire_on_commit=False) as db:
        project = make_project(db)
        comparisons = make_queue(db, project, QueueKind.comparison, max_active_leases=2)
        make_comparison_tasks(db, comparisons, project, COMPARISON_TASKS, RESPONSES_EACH)
        demonstrations = make_queue(db, project, QueueKind.demonstration, max_active_leases=2)
        for index in range(DEMONSTRATION_TASKS):
            make_task(db, demonstrations, make_prompt(db, project, f"write {index}"))
        db.commit()
        accounts = []
        for index in range(4):
            user = make_user(db, f"labeler{index}")
            accounts.append((user.username, make_token(db, user)))

    server = WebServer(tmp_path / "data", database_url)
    server.start()
    clients = [
        Client(
            server.base_url,
            username,
            token,
            comparisons.id if index % 2 == 0 else demonstrations.id,
            "comparison" if index % 2 == 0 else "demonstration",
        )
        for index, (username, token) in enumerate(accounts)
    ]
    threads = [threading.Thread(target=client.run) for client in clients]
    try:
        for thread in threads:
            thread.start()
        rng = random.Random(8)
        kills = 0
        while kills < KILLS and any(thread.is_alive() for thread in threads):
            # Each kill comes after a few more labels (or a moment), so all six land while the
            # clients work: on an idle machine they finished 40 labels before a timed sixth.
            target = (kills + 1) * LABELS_BETWEEN_KILLS + rng.randint(0, 2)
            deadline = time.monotonic() + rng.uniform(0.3, 0.9)
            while time.monotonic() < deadline and sum(c.submitted for c in clients) < target:
                time.sleep(0.02)
            # ...and while a label is on its way, so that submits, not only leases, are cut.
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and not any(c.submitting for c in clients):
                time.sleep(0.005)
            server.kill()
            kills += 1
            server.start()
        for thread in threads:
            thread.join(GIVE_UP_SECONDS)
        assert [client.error for client in clients if client.error] == []
        assert not any(thread.is_alive() for thread in threads)

        # The clients' own last labels once more, on purpose: answered as replays, not stored.
        for client in clients:
            assert client.last_body is not None
            path, body = client.last_body
            assert client.call("POST", path, body)["replayed"] is True
    finally:
        server.stop()

    meant = sorted(key for client in clients for key in client.keys)
    # Every task got exactly one label, and each key was meant once.
    assert len(meant) == len(set(meant)) == COMPARISON_TASKS + DEMONSTRATION_TASKS
    with Session(engine) as db:
        stored = sorted(
            [
                *db.scalars(select(Comparison.idempotency_key)),
                *db.scalars(select(Demonstration.idempotency_key)),
            ]
        )
        assert stored == meant
        pairs_per_comparison = list(
            db.execute(select(Pair.comparison_id, func.count()).group_by(Pair.comparison_id)).all()
        )
        assert len(pairs_per_comparison) == COMPARISON_TASKS
        assert {count for _, count in pairs_per_comparison} == {PAIRS_EACH}
        submitted = db.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.status == AssignmentStatus.submitted)
        )
        assert submitted == COMPARISON_TASKS + DEMONSTRATION_TASKS
        open_leases = db.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.status == AssignmentStatus.active)
        )
        assert open_leases == 0
    engine.dispose()

    assert kills == KILLS
    assert server.starts == KILLS + 1
    # The kills did hit the clients: requests, submits among them, had to be repeated.
    assert sum(client.submit_retries for client in clients) > 0
    print(
        f"\nkills={kills} submits={sum(c.submitted for c in clients)} "
        f"retries={sum(c.retries for c in clients)} "
        f"submit_retries={sum(c.submit_retries for c in clients)} "
        f"replayed_during_kills={sum(c.replayed for c in clients)} "
        f"labels_stored={len(stored)} "
        f"lease_cap_hits={sum(c.lease_cap_hits for c in clients)}"
    )
