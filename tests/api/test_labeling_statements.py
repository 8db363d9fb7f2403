"""The labeling hot path's SQL statements, counted: a lease and a submit each cost a fixed,
small number of round trips to the database, whatever the queue's size. A change that adds one
fails here and says which statements ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from app.models import Role, User
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_comparison_tasks, make_project, make_queue, publish_guideline

# Savepoints are the test's rolled-back transaction (tests/conftest.py `db`), not the app's.
TEST_ONLY = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
# The token check: cached for a second per process, so a client's next request makes none
# (tests/services/test_token_cache.py counts it); left out here so a slow test machine that
# takes over a second between two requests cannot make this test flaky.
TOKEN_CHECK = " FROM api_tokens JOIN users "


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    ran: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Whitespace made single first: SQLAlchemy starts each clause on a new line (before,
        # " FROM api_tokens" never matched, and a CI run counted a token check in a lease).
        flat = " ".join(statement.split())
        if not flat.upper().startswith(TEST_ONLY) and TOKEN_CHECK not in flat:
            ran.append(flat[:160])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", count)


def judge(assignment: dict) -> dict:
    ids = [response["id"] for response in assignment["responses"]]
    return {
        "items": [
            {"response_id": response_id, "rank": rank, "score": 8 - rank}
            for rank, response_id in enumerate(ids, start=1)
        ],
        "idempotency_key": f"key-{assignment['id']:08d}",
    }


# Per backend: statements of a lease, of a submit. PostgreSQL: the labeler's lock with the
# queue, expiry with the lease cap's count, the INSERT ... SELECT that picks and leases, the
# page's one read; the claiming UPDATE (with the draft's DELETE), the context read, the
# comparison (whose INSERT also locks the task's stored agreement row), its items, its pairs,
# and the task's agreement recomputed and written by one UPDATE
# (app/services/task_agreement.py). SQLite runs expiry and the count, the claim and the
# draft's DELETE, and the comparison and the agreement's lock, as two statements each (it has
# no data-modifying WITH): 5 and 8.
EXPECTED = {"postgresql": (4, 6), "sqlite": (5, 8)}


def test_a_lease_and_a_submit_take_a_fixed_number_of_statements(
    client: TestClient, db: Session, engine: Engine, labeler: User, backend: str
) -> None:
    project = make_project(db)
    publish_guideline(db, project, 1)
    queue = make_queue(db, project, overlap=1)
    make_comparison_tasks(db, queue, project, 30, responses_each=4)
    headers = bearer(make_token(db, labeler))
    other = bearer(make_token(db, make_user(db, "omar", Role.labeler)))
    # The first check of a token records when it was used (an UPDATE, then once a minute).
    assert client.get("/api/v1/me/queues", headers=headers).status_code == 200
    # Warm up, and fill part of the queue so that a lease passes over full tasks.
    for _ in range(5):
        leased = client.post(f"/api/v1/queues/{queue.id}/lease", headers=other).json()
        done = client.post(
            f"/api/v1/assignments/{leased['assignment']['id']}/comparison",
            json=judge(leased["assignment"]),
            headers=other,
        )
        assert done.status_code == 201

    with statements(engine) as lease_statements:
        leased = client.post(f"/api/v1/queues/{queue.id}/lease", headers=headers)
    assert leased.status_code == 200
    assignment = leased.json()["assignment"]
    assert len(assignment["responses"]) == 4
    with statements(engine) as submit_statements:
        done = client.post(
            f"/api/v1/assignments/{assignment['id']}/comparison",
            json=judge(assignment),
            headers=headers,
        )
    assert done.status_code == 201
    assert done.json()["pairs"] == 6

    assert (len(lease_statements), len(submit_statements)) == EXPECTED[backend], "\n".join(
        ["lease:", *lease_statements, "submit:", *submit_statements]
    )
