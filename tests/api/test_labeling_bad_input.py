"""Bad labels over the API: each a clear 4xx, nothing stored, nothing lost, on SQLite and
PostgreSQL alike.

Every case leases one task, sends one bad request and checks the exact error body and that
every labeling table (labels, pairs, responses, assignments, drafts) is row for row as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Assignment, QueueKind, Response, User
from app.models.base import utcnow
from tests.api.helpers import API, Json, db_state, error
from tests.conftest import bearer, make_token, make_user
from tests.factories import make_comparison_tasks, make_project, make_prompt, make_queue, make_task

LABEL_TABLES = (
    "assignments",
    "comparisons",
    "comparison_items",
    "pairs",
    "demonstrations",
    "responses",
    "drafts",
)


@dataclass
class Leased:
    assignment: Json
    headers: dict[str, str]

    @property
    def id(self) -> int:
        return int(self.assignment["id"])

    @property
    def ids(self) -> list[int]:
        return [response["id"] for response in self.assignment["responses"]]


def lease(client: TestClient, db: Session, labeler: User, kind: QueueKind) -> Leased:
    project = make_project(db)
    queue = make_queue(db, project, kind=kind)
    if kind == QueueKind.comparison:
        make_comparison_tasks(db, queue, project, 1, responses_each=3)
    else:
        make_task(db, queue, make_prompt(db, project))
        db.commit()
    headers = bearer(make_token(db, labeler))
    answer = client.post(f"{API}/queues/{queue.id}/lease", headers=headers)
    assert answer.status_code == 200, answer.text
    return Leased(answer.json()["assignment"], headers)


def judged(ids: list[int], **changes: Any) -> Json:
    return {
        "items": [
            {"response_id": response_id, "rank": rank, "score": 8 - rank * 2}
            for rank, response_id in enumerate(ids, start=1)
        ]
    } | changes


def with_item(ids: list[int], index: int, **changes: Any) -> Json:
    body = judged(ids)
    body["items"][index] |= changes
    return body


def invalid(location: str, message: str, kind: str) -> Json:
    """The exact 422 for one bad field of the body (location without "body.")."""
    return {
        "error": {
            "code": "invalid_request",
            "message": f"body.{location}: {message}",
            "field": location,
            "problems": [{"location": f"body.{location}", "message": message, "type": kind}],
        }
    }


NUL = "Value error, text may not contain NUL bytes"
SURROGATE = "Value error, text contains invalid unicode (a lone surrogate)"


@dataclass(frozen=True)
class Case:
    name: str
    kind: QueueKind
    # "comparison", "demonstration" or "skip"
    action: str
    body: Callable[[list[int]], Json]
    status: int
    expected: Callable[[Leased], Json]


def body_error(message: str) -> Json:
    """The exact 422 for a body that is wrong as a whole."""
    return {
        "error": {
            "code": "invalid_request",
            "message": f"body: {message}",
            "field": None,
            "problems": [{"location": "body", "message": message, "type": "value_error"}],
        }
    }


NOT_AN_INTEGER = "Input should be a valid integer"
RANK_RANGE = "Value error, a rank runs from 1 to the number of responses judged (3)"

CASES = [
    Case(
        "score-true",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 0, score=True),
        422,
        lambda _: invalid("items.0.score", NOT_AN_INTEGER, "int_type"),
    ),
    Case(
        "score-numeric-string",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 1, score="7"),
        422,
        lambda _: invalid("items.1.score", NOT_AN_INTEGER, "int_type"),
    ),
    Case(
        "score-float",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, score=7.0),
        422,
        lambda _: invalid("items.2.score", NOT_AN_INTEGER, "int_type"),
    ),
    Case(
        "rank-true",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 0, rank=True),
        422,
        lambda _: invalid("items.0.rank", NOT_AN_INTEGER, "int_type"),
    ),
    Case(
        "rank-2**63",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, rank=2**63),
        422,
        lambda _: body_error(RANK_RANGE),
    ),
    Case(
        "rank-past-the-responses",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, rank=4),
        422,
        lambda _: body_error(RANK_RANGE),
    ),
    Case(
        "response-id-as-string",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 0, response_id=str(ids[0])),
        422,
        lambda _: invalid("items.0.response_id", NOT_AN_INTEGER, "int_type"),
    ),
    Case(
        "nul-in-comment",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, comment="fine\x00"),
        422,
        lambda _: invalid("comment", NUL, "value_error"),
    ),
    Case(
        "surrogate-in-comment",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, comment="fine\ud83d"),
        422,
        lambda _: invalid("comment", SURROGATE, "value_error"),
    ),
    Case(
        "nul-in-flag-note",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 1, flags=["other"], flag_note="\x00"),
        422,
        lambda _: invalid("items.1.flag_note", NUL, "value_error"),
    ),
    Case(
        "surrogate-in-flag",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 0, flags=["\udc00"]),
        422,
        lambda _: invalid("items.0.flags.0", SURROGATE, "value_error"),
    ),
    Case(
        "nul-in-rewrite",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, rewrites=[{"response_id": ids[0], "content": "bet\x00ter"}]),
        422,
        lambda _: invalid("rewrites.0.content", NUL, "value_error"),
    ),
    Case(
        "nul-in-idempotency-key",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, idempotency_key="key\x00-0001"),
        422,
        lambda _: invalid("idempotency_key", NUL, "value_error"),
    ),
    Case(
        "surrogate-in-demonstration",
        QueueKind.demonstration,
        "demonstration",
        lambda _: {"messages": [{"role": "assistant", "content": "Hi \ud800 there"}]},
        422,
        lambda _: invalid("messages.0.content", SURROGATE, "value_error"),
    ),
    Case(
        "nul-in-demonstration",
        QueueKind.demonstration,
        "demonstration",
        lambda _: {"messages": [{"role": "assistant", "content": "\x00"}]},
        422,
        lambda _: invalid("messages.0.content", NUL, "value_error"),
    ),
    Case(
        "nul-in-skip-note",
        QueueKind.comparison,
        "skip",
        lambda _: {"reason": "other", "note": "no\x00"},
        422,
        lambda _: invalid("note", NUL, "value_error"),
    ),
    Case(
        "score-0",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, score=0),
        422,
        lambda _: invalid(
            "items.2.score", "Input should be greater than or equal to 1", "greater_than_equal"
        ),
    ),
    Case(
        "score-8",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 0, score=8),
        422,
        lambda _: invalid(
            "items.0.score", "Input should be less than or equal to 7", "less_than_equal"
        ),
    ),
    Case(
        "ranking-misses-a-response",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, response_id=999_999),
        422,
        lambda leased: error(
            "invalid_input",
            f"judge exactly the task's responses: missing [{leased.ids[2]}], unknown [999999]",
        ),
    ),
    Case(
        "ranking-leaves-one-out",
        QueueKind.comparison,
        "comparison",
        lambda ids: {"items": judged(ids)["items"][:2]},
        422,
        lambda leased: error(
            "invalid_input",
            f"judge exactly the task's responses: missing [{leased.ids[2]}], unknown []",
        ),
    ),
    Case(
        "ranking-repeats-a-response",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 2, response_id=ids[0]),
        422,
        lambda _: {
            "error": {
                "code": "invalid_request",
                "message": "body: Value error, each response may be judged once",
                "field": None,
                "problems": [
                    {
                        "location": "body",
                        "message": "Value error, each response may be judged once",
                        "type": "value_error",
                    }
                ],
            }
        },
    ),
    Case(
        "flag-not-in-schema",
        QueueKind.comparison,
        "comparison",
        lambda ids: with_item(ids, 1, flags=["hallucination", "boring"]),
        422,
        lambda leased: error(
            "invalid_input", f"unknown flag(s) boring for response {leased.ids[1]}"
        ),
    ),
    Case(
        "comment-too-long",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, comment="x" * 10_001),
        422,
        lambda _: invalid(
            "comment", "String should have at most 10000 characters", "string_too_long"
        ),
    ),
    Case(
        "rewrite-too-long",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, rewrites=[{"response_id": ids[1], "content": "y" * 100_001}]),
        422,
        lambda _: invalid(
            "rewrites.0.content", "String should have at most 100000 characters", "string_too_long"
        ),
    ),
    Case(
        "demonstration-too-long",
        QueueKind.demonstration,
        "demonstration",
        lambda _: {"messages": [{"role": "assistant", "content": "z" * 100_001}]},
        422,
        lambda _: invalid(
            "messages.0.content",
            "String should have at most 100000 characters",
            "string_too_long",
        ),
    ),
    Case(
        "rewrite-unchanged",
        QueueKind.comparison,
        "comparison",
        lambda ids: judged(ids, rewrites=[{"response_id": ids[1], "content": "same"}]),
        422,
        lambda leased: error(
            "invalid_input",
            f"the rewrite of response {leased.ids[1]} is the same as the original",
            "rewrites.0.content",
        ),
    ),
]


def send(client: TestClient, leased: Leased, action: str, body: Json) -> Any:
    # Encoded here with ASCII escapes, so a lone surrogate travels as "\\ud800", which is what a
    # client's JSON encoder sends.
    return client.post(
        f"{API}/assignments/{leased.id}/{action}",
        content=json.dumps(body),
        headers={**leased.headers, "content-type": "application/json"},
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_label_is_refused_and_changes_nothing(
    client: TestClient, db: Session, labeler: User, case: Case
) -> None:
    leased = lease(client, db, labeler, case.kind)
    if case.name == "rewrite-unchanged":
        # The responses are "answer 0..2"; give the one rewritten a known text.
        response = db.get(Response, leased.ids[1])
        assert response is not None
        response.content = "same"
        db.commit()
    before = db_state(db, LABEL_TABLES)

    answer = send(client, leased, case.action, case.body(leased.ids))

    assert (answer.status_code, answer.json()) == (case.status, case.expected(leased))
    assert db_state(db, LABEL_TABLES) == before


def test_someone_elses_assignment_is_404(client: TestClient, db: Session, labeler: User) -> None:
    leased = lease(client, db, labeler, QueueKind.comparison)
    intruder = bearer(make_token(db, make_user(db, "mallory")))
    before = db_state(db, LABEL_TABLES)
    body = judged(leased.ids)
    for action, sent in (("comparison", body), ("skip", {"reason": "broken_task"})):
        answer = client.post(f"{API}/assignments/{leased.id}/{action}", json=sent, headers=intruder)
        assert (answer.status_code, answer.json()) == (
            404,
            error("not_found", f"no assignment {leased.id} of yours"),
        )
    answer = client.put(
        f"{API}/assignments/{leased.id}/draft", json={"content": {}}, headers=intruder
    )
    assert answer.status_code == 404
    assert db_state(db, LABEL_TABLES) == before


def test_a_submit_after_the_lease_expired_is_409_and_keeps_the_draft(
    client: TestClient, db: Session, labeler: User
) -> None:
    leased = lease(client, db, labeler, QueueKind.comparison)
    saved = client.put(
        f"{API}/assignments/{leased.id}/draft",
        json={"content": {"comment": "half way"}},
        headers=leased.headers,
    )
    assert saved.status_code == 200
    assignment = db.get(Assignment, leased.id)
    assert assignment is not None
    ended = utcnow() - timedelta(seconds=1)
    assignment.leased_at = ended - timedelta(minutes=10)
    assignment.lease_expires_at = ended
    db.commit()
    before = db_state(db, LABEL_TABLES)

    answer = send(client, leased, "comparison", judged(leased.ids))

    assert (answer.status_code, answer.json()) == (
        409,
        error(
            "lease_expired",
            f"the lease on assignment {leased.id} expired at {ended.isoformat()}; your draft "
            "is kept: renew the lease to submit it",
        ),
    )
    assert db_state(db, LABEL_TABLES) == before
    draft = client.get(f"{API}/assignments/{leased.id}/draft", headers=leased.headers)
    assert draft.json()["content"] == {"comment": "half way"}


def test_a_second_submit_is_409_and_stores_one_label(
    client: TestClient, db: Session, labeler: User
) -> None:
    leased = lease(client, db, labeler, QueueKind.comparison)
    first = send(client, leased, "comparison", judged(leased.ids, idempotency_key="first-key-1"))
    assert first.status_code == 201
    before = db_state(db, LABEL_TABLES)
    for body in (judged(leased.ids), judged(leased.ids, idempotency_key="other-key-2")):
        answer = send(client, leased, "comparison", body)
        assert (answer.status_code, answer.json()) == (
            409,
            error("conflict", f"assignment {leased.id} is submitted"),
        )
    assert db_state(db, LABEL_TABLES) == before
    assert len(before["comparisons"]) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"comment": "a\\u0000b"}', "the draft is refused: text may not contain NUL bytes"),
        (
            '{"comment": "\\ud800"}',
            "the draft is refused: text contains invalid unicode (a lone surrogate)",
        ),
        ('{"score": NaN}', "the draft is refused: numbers must be finite (no NaN or Infinity)"),
        (
            '{"comment": "' + "x" * 262_144 + '"}',
            "the draft is 262158 bytes as JSON; the most is 262144",
        ),
    ],
    ids=["nul", "surrogate", "nan", "too-big"],
)
def test_an_unstorable_draft_is_422_and_the_old_one_kept(
    client: TestClient, db: Session, labeler: User, content: str, message: str
) -> None:
    leased = lease(client, db, labeler, QueueKind.comparison)
    url = f"{API}/assignments/{leased.id}/draft"
    assert (
        client.put(url, json={"content": {"comment": "ok"}}, headers=leased.headers).json()[
            "revision"
        ]
        == 1
    )
    before = db_state(db, LABEL_TABLES)
    answer = client.put(
        url,
        content='{"content": ' + content + "}",
        headers={**leased.headers, "content-type": "application/json"},
    )
    assert (answer.status_code, answer.json()) == (422, error("invalid_input", message, "content"))
    assert db_state(db, LABEL_TABLES) == before
