"""app/simulation/labeler.py: simulated labelers work real queues over the JSON API, as a
person's client does, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    AssignmentStatus,
    Comparison,
    ComparisonItem,
    Demonstration,
    Pair,
    Project,
    Prompt,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
    User,
)
from app.simulation.judge import Judge, true_utility
from app.simulation.labeler import (
    MAX_RETRY_AFTER_SECONDS,
    LabelerAccount,
    LabelerError,
    SimulatedLabeler,
    WorkSummary,
    create_labeler_accounts,
)
from app.simulation.world import TEMPLATES, TOPICS, answer, topic_of
from tests.conftest import make_token
from tests.factories import make_project, make_prompt, make_queue, make_task

# Per task: the texts the judge sees, by what the hidden preference makes of them.
KINDS = {"liked": ("calm", "warm"), "disliked": ("dull", "grim"), "mixed": ("kind", "cold")}


def comparison_queue(
    db: Session, project: Project, tasks: int
) -> tuple[Queue, list[dict[str, int]]]:
    """A comparison queue with overlap 3 whose tasks each show a liked, a disliked and a mixed
    answer to a prompt of the world; returns the queue and each task's response ids by kind."""
    queue = make_queue(db, project, overlap=3, name="compare")
    shown = []
    for index in range(tasks):
        topic = TOPICS[index]
        prompt = make_prompt(db, project, TEMPLATES[0].format(topic=topic))
        responses = {
            kind: Response(
                prompt_id=prompt.id,
                content=answer(topic, *words),
                source=ResponseSource.imported,
                source_name="secret-source-name",
            )
            for kind, words in KINDS.items()
        }
        db.add_all(responses.values())
        db.flush()
        task = make_task(db, queue, prompt, list(responses.values()))
        shown.append({"task": task.id} | {kind: r.id for kind, r in responses.items()})
    db.commit()
    return queue, shown


def demonstration_queue(db: Session, project: Project) -> Queue:
    """Three prompts of the world and one the judge knows nothing about."""
    queue = make_queue(db, project, QueueKind.demonstration, name="write")
    for topic in TOPICS[:3]:
        make_task(db, queue, make_prompt(db, project, f"Describe {topic}."))
    make_task(db, queue, make_prompt(db, project, "Write a haiku."))
    db.commit()
    return queue


def accounts(client: TestClient, db: Session, count: int) -> list[LabelerAccount]:
    admin = db.scalar(select(User).where(User.username == "root-admin"))
    assert admin is not None
    names = [f"sim-{index}" for index in range(1, count + 1)]
    return create_labeler_accounts(client, make_token(db, admin), names)


def test_three_labelers_work_a_comparison_queue_with_overlap_three(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, shown = comparison_queue(db, project, tasks=4)
    team = [
        SimulatedLabeler(client, account.token, Judge(noise=0.0, seed=index))
        for index, account in enumerate(accounts(client, db, 3))
    ]
    assert team[0].queues() == [
        {
            "queue_id": queue.id,
            "queue_name": "compare",
            "kind": "comparison",
            "priority": 0,
            "project_id": project.id,
            "project_name": "Helpful",
            "left": 4,
            "done_today": 0,
            "held": [],
        }
    ]

    summaries = [labeler.work(queue.id) for labeler in team]

    assert summaries == [WorkSummary(submitted=4, skipped=0, retries=0)] * 3
    for task in shown:
        comparisons = db.scalars(select(Comparison).where(Comparison.task_id == task["task"]))
        labelers = [comparison.labeler_id for comparison in comparisons]
        assert len(labelers) == len(set(labelers)) == 3
    # Without noise every ranking is the hidden preference: liked > mixed > disliked.
    pairs = db.execute(
        select(Pair.winner_response_id, Pair.loser_response_id, func.count())
        .group_by(Pair.winner_response_id, Pair.loser_response_id)
        .order_by(Pair.winner_response_id, Pair.loser_response_id)
    ).all()
    expected = sorted(
        (winner, loser, 3)
        for task in shown
        for winner, loser in (
            (task["liked"], task["mixed"]),
            (task["liked"], task["disliked"]),
            (task["mixed"], task["disliked"]),
        )
    )
    assert [tuple(row) for row in pairs] == expected
    scores = {(row.response_id, row.score, row.rank) for row in db.scalars(select(ComparisonItem))}
    assert scores == {
        (task[kind], score, rank)
        for task in shown
        for kind, score, rank in (("liked", 7, 1), ("mixed", 4, 2), ("disliked", 1, 3))
    }
    # The queue has nothing more for anyone.
    assert team[0].work(queue.id) == WorkSummary()


def test_a_labeler_writes_demonstrations_and_skips_what_it_cannot_judge(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue = demonstration_queue(db, project)
    (account,) = accounts(client, db, 1)
    writer = SimulatedLabeler(client, account.token, Judge(0.0), helpful_share=1.0, seed=2)

    assert writer.work(queue.id) == WorkSummary(submitted=3, skipped=1, retries=0)

    written = db.scalars(select(Demonstration).order_by(Demonstration.id)).all()
    assert [d.labeler_id for d in written] == [account.user_id] * 3
    for demonstration in written:
        (turn,) = demonstration.messages
        prompt = db.get(Prompt, demonstration.prompt_id)
        assert prompt is not None
        assert turn["role"] == "assistant"
        assert true_utility(turn["content"]) == 2.0  # helpful_share 1: all helpful
        topic = topic_of(prompt.messages[0]["content"])
        assert topic is not None and turn["content"].lower().startswith(topic)
    skipped = db.scalars(
        select(Assignment).where(Assignment.status == AssignmentStatus.skipped)
    ).all()
    assert [(a.labeler_id, a.skip_reason) for a in skipped] == [
        (account.user_id, "lacks_expertise")
    ]


def test_a_comparison_with_one_response_is_skipped_as_broken(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, shown = comparison_queue(db, project, tasks=1)
    lonely = make_prompt(db, project, "Describe winter.")
    response = Response(
        prompt_id=lonely.id, content="Winter is calm and warm.", source=ResponseSource.imported
    )
    db.add(response)
    db.flush()
    broken = make_task(db, queue, lonely, [response], priority=1)
    db.commit()
    (account,) = accounts(client, db, 1)

    summary = SimulatedLabeler(client, account.token, Judge(0.0)).work(queue.id)

    assert summary == WorkSummary(submitted=1, skipped=1)
    finished = db.execute(
        select(Assignment.task_id, Assignment.status, Assignment.skip_reason).order_by(
            Assignment.id
        )
    ).all()
    assert [tuple(row) for row in finished] == [
        (broken.id, AssignmentStatus.skipped, "broken_task"),
        (shown[0]["task"], AssignmentStatus.submitted, None),
    ]


def test_a_limit_stops_the_labeler_and_held_work_is_resumed_first(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=3)
    (account,) = accounts(client, db, 1)
    labeler = SimulatedLabeler(client, account.token, Judge(0.0))
    held = client.post(
        f"/api/v1/queues/{queue.id}/lease", headers={"Authorization": f"Bearer {account.token}"}
    ).json()["assignment"]

    assert labeler.work(queue.id, limit=2) == WorkSummary(submitted=2)
    done = db.scalars(
        select(Assignment.id).where(Assignment.status == AssignmentStatus.submitted)
    ).all()
    assert held["id"] in done and len(done) == 2
    assert labeler.work(queue.id) == WorkSummary(submitted=1)
    assert db.scalar(select(func.count()).select_from(Comparison)) == 3


class LosesAnswers(TestClient):
    """A client on a flaky network: the first `lose` label submissions reach the server and are
    stored, but their answers never come back."""

    def __init__(self, app: FastAPI, lose: int) -> None:
        super().__init__(app, follow_redirects=False)
        self.lose = lose
        self.keys: list[str] = []

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        answer = super().request(method, url, **kwargs)
        if method == "POST" and str(url).endswith(("/comparison", "/demonstration")):
            self.keys.append(kwargs["json"]["idempotency_key"])
            if self.lose:
                self.lose -= 1
                raise httpx.ReadError("connection reset", request=answer.request)
        return answer


def test_a_lost_answer_is_retried_with_the_same_key_and_stores_one_label(
    app: FastAPI, client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=2)
    (account,) = accounts(client, db, 1)
    with LosesAnswers(app, lose=2) as flaky:
        labeler = SimulatedLabeler(flaky, account.token, Judge(0.0), max_retries=3)
        assert labeler.work(queue.id) == WorkSummary(submitted=2, skipped=0, retries=2)
    # Attempts 1 and 2 of the first label were lost; the third was answered with a replay.
    assert flaky.keys[0] == flaky.keys[1] == flaky.keys[2] != flaky.keys[3]
    assert len(flaky.keys) == 4
    stored = db.scalars(select(Comparison.idempotency_key).order_by(Comparison.id)).all()
    assert stored == [flaky.keys[0], flaky.keys[3]]
    assert db.scalar(select(func.count()).select_from(Pair)) == 2 * 3


class ServerDown(TestClient):
    """Every label submission fails before reaching the app: a 503 or a refused connection."""

    def __init__(self, app: FastAPI, failure: str) -> None:
        super().__init__(app, follow_redirects=False)
        self.failure = failure
        self.attempts = 0

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        if method == "POST" and str(url).endswith("/comparison"):
            self.attempts += 1
            request = httpx.Request(method, f"http://testserver{url}")
            if self.failure == "503":
                return httpx.Response(503, text="upstream unavailable", request=request)
            raise httpx.ConnectError("connection refused", request=request)
        return super().request(method, url, **kwargs)


@pytest.mark.parametrize(
    ("failure", "raised", "message"),
    [
        ("503", LabelerError, "/comparison -> 503: upstream unavailable"),
        ("refused", httpx.ConnectError, "connection refused"),
    ],
)
def test_retries_are_bounded_and_leave_nothing_behind(
    app: FastAPI,
    client: TestClient,
    db: Session,
    admin: User,
    failure: str,
    raised: type[Exception],
    message: str,
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=1)
    (account,) = accounts(client, db, 1)
    with ServerDown(app, failure) as down:
        labeler = SimulatedLabeler(down, account.token, Judge(0.0), max_retries=2)
        with pytest.raises(raised, match=message):
            labeler.work(queue.id)
    assert down.attempts == 3
    assert db.scalar(select(func.count()).select_from(Comparison)) == 0
    assert db.scalars(select(Assignment.status)).all() == [AssignmentStatus.active]


class Busy(TestClient):
    """A server whose database is busy for the first `busy[name]` requests to paths ending in
    /name: each is answered 503 `database_busy` with Retry-After, as app/unavailable.py does,
    without reaching the app. Every such attempt's last path part and idempotency key are kept."""

    def __init__(self, app: FastAPI, busy: dict[str, int], retry_after: str) -> None:
        super().__init__(app, follow_redirects=False)
        self.busy = busy
        self.retry_after = retry_after
        self.attempts: list[tuple[str, str | None]] = []

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        name = str(url).rsplit("/", 1)[-1]
        if name not in self.busy:
            return super().request(method, url, **kwargs)
        self.attempts.append((name, (kwargs.get("json") or {}).get("idempotency_key")))
        if self.busy[name]:
            self.busy[name] -= 1
            return httpx.Response(
                503,
                json={"error": {"code": "database_busy", "message": "busy", "field": None}},
                headers={"Retry-After": self.retry_after},
                request=httpx.Request(method, f"http://testserver{url}"),
            )
        return super().request(method, url, **kwargs)


def test_a_busy_server_is_asked_again_after_its_retry_after_and_keeps_one_label(
    app: FastAPI, client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=1)
    (account,) = accounts(client, db, 1)
    waits: list[float] = []
    with Busy(app, {"lease": 2, "comparison": 2}, retry_after="2") as busy:
        labeler = SimulatedLabeler(
            busy, account.token, Judge(0.0), max_retries=3, sleep=waits.append
        )
        assert labeler.work(queue.id) == WorkSummary(submitted=1, skipped=0, retries=2)
    assert waits == [2.0] * 4
    kinds = [kind for kind, _ in busy.attempts]
    # The lease three times, the submit three times, and a last lease that finds none left.
    assert kinds == ["lease"] * 3 + ["comparison"] * 3 + ["lease"]
    keys = {key for kind, key in busy.attempts if kind == "comparison"}
    assert len(keys) == 1
    assert db.scalars(select(Comparison.idempotency_key)).all() == list(keys)
    assert db.scalars(select(Assignment.status)).all() == [AssignmentStatus.submitted]


def test_a_server_busy_for_too_long_is_an_error_after_bounded_capped_waits(
    app: FastAPI, client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=1)
    (account,) = accounts(client, db, 1)
    waits: list[float] = []
    with Busy(app, {"lease": 100}, retry_after="3600") as busy:
        labeler = SimulatedLabeler(
            busy, account.token, Judge(0.0), max_retries=2, sleep=waits.append
        )
        with pytest.raises(LabelerError, match=r"/lease -> 503: busy"):
            labeler.work(queue.id)
    assert waits == [MAX_RETRY_AFTER_SECONDS] * 2 == [30.0] * 2
    assert len(busy.attempts) == 3
    assert db.scalars(select(Assignment.status)).all() == []


class Recording(TestClient):
    """Keeps every path asked and every JSON answer, to see what a labeler learns."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(app, follow_redirects=False)
        self.asked: list[str] = []
        self.answers: list[Any] = []

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        answer = super().request(method, url, **kwargs)
        self.asked.append(f"{method} {answer.request.url.path}")
        self.answers.append(answer.json())
        return answer


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_of(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_of(item)}
    return set()


def test_the_labeler_sees_only_what_a_labeler_sees(
    app: FastAPI, client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=2)
    (account,) = accounts(client, db, 1)
    with Recording(app) as recording:
        SimulatedLabeler(recording, account.token, Judge(0.0)).work(queue.id)
    assert [asked.split("/")[-1] for asked in recording.asked] == [
        "assignments",
        "lease",
        "comparison",
        "lease",
        "comparison",
        "lease",
    ]
    leased = [answer["assignment"] for answer in recording.answers if "message" in answer]
    assert all(set(r) == {"id", "content"} for a in leased if a for r in a["responses"])
    seen = keys_of(recording.answers)
    assert not seen & {"source", "source_name", "model_id", "run_id", "author_id", "sampling"}
    assert "secret-source-name" not in str(recording.answers)


def test_refusals_are_errors_not_retries(client: TestClient, db: Session, admin: User) -> None:
    project = make_project(db)
    queue, _ = comparison_queue(db, project, tasks=1)
    stranger = SimulatedLabeler(client, "not-a-token", Judge(0.0))
    with pytest.raises(LabelerError, match="GET /api/v1/assignments -> 401"):
        stranger.work(queue.id)
    (account,) = accounts(client, db, 1)
    with pytest.raises(LabelerError, match=f"POST /api/v1/queues/{queue.id + 99}/lease -> 404"):
        SimulatedLabeler(client, account.token, Judge(0.0)).work(queue.id + 99)
    with pytest.raises(ValueError, match="max_retries is 0 or more"):
        SimulatedLabeler(client, account.token, Judge(0.0), max_retries=-1)
    with pytest.raises(ValueError, match=r"helpful_share is a probability; got 1\.5"):
        SimulatedLabeler(client, account.token, Judge(0.0), helpful_share=1.5)
    assert db.scalar(select(func.count()).select_from(Assignment)) == 0


def test_accounts_are_made_through_the_api_with_working_tokens(
    client: TestClient, db: Session, admin: User
) -> None:
    made = accounts(client, db, 2)
    assert [account.username for account in made] == ["sim-1", "sim-2"]
    for account in made:
        user = db.get(User, account.user_id)
        assert user is not None
        assert (user.username, user.role, user.must_change_password) == (
            account.username,
            Role.labeler,
            False,
        )
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {account.token}"})
        assert me.json()["username"] == account.username


def test_a_taken_username_or_a_non_admin_is_refused_and_changes_nothing(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    accounts(client, db, 1)
    before = db.scalar(select(func.count()).select_from(User))
    with pytest.raises(LabelerError, match="POST /api/v1/users -> 409: the username 'sim-1'"):
        accounts(client, db, 1)
    with pytest.raises(LabelerError, match="POST /api/v1/users -> 403"):
        create_labeler_accounts(client, make_token(db, labeler), ["sim-9"])
    assert db.scalar(select(func.count()).select_from(User)) == before
