"""/api/v1/auth/token, /api/v1/me, /api/v1/me/password and /api/v1/tokens: who is asking."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import ApiToken, LoginAttempt, User, UserSession
from app.models.base import utcnow
from app.security import token_hash, verify_password
from app.services import auth
from app.settings import Settings
from tests.api.helpers import (
    API,
    Json,
    count,
    db_state,
    error,
    iso,
    reload,
    user_json,
    validation_error,
)
from tests.conftest import PASSWORD, bearer, make_token, make_user

NUL = "Value error, text may not contain NUL bytes"
SURROGATE = "Value error, text contains invalid unicode (a lone surrogate)"

WRONG_CREDENTIALS = error("authentication_failed", "wrong username or password")
NO_TOKEN = error("authentication_failed", "send an API token as 'Authorization: Bearer <token>'")
BAD_TOKEN = error(
    "authentication_failed", "the API token is unknown, revoked, expired or its user inactive"
)
RATE_LIMITED = error("rate_limited", "too many failed logins; try again in 15 minute(s)")
NEW_PASSWORD = "a brand new passphrase"


def token_login(client: TestClient, username: str, password: str, **extra: object) -> Json:
    """POST /auth/token; returns status, body and headers together for exact comparisons."""
    response = client.post(
        f"{API}/auth/token", json={"username": username, "password": password, **extra}
    )
    return {"status": response.status_code, "body": response.json(), "headers": response.headers}


def token_record(db: Session, token: str) -> ApiToken:
    return db.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash(token))).one()


def token_json(record: ApiToken) -> Json:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_at": iso(record.created_at),
        "last_used_at": iso(record.last_used_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
    }


def me(client: TestClient, token: str) -> tuple[int, Json]:
    response = client.get(f"{API}/me", headers=bearer(token))
    return response.status_code, response.json()


def assert_refused_token(client: TestClient, token: str) -> None:
    response = client.get(f"{API}/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN
    assert response.headers["www-authenticate"] == "Bearer"


# --- password -> token ----------------------------------------------------------------------


def test_right_password_gives_a_token_that_works(
    client: TestClient, db: Session, labeler: User
) -> None:
    result = token_login(client, "Lena", PASSWORD)

    assert result["status"] == 201
    token = result["body"]["token"]
    assert token.startswith("smy_")
    assert len(token) > 40
    record = token_record(db, token)
    assert record.user_id == labeler.id
    assert record.token_hash == token_hash(token) != token
    assert result["body"] == {
        "token": token,
        "info": {
            "id": record.id,
            "name": "script",
            "prefix": token[:10],
            "created_at": iso(record.created_at),
            "last_used_at": None,
            "expires_at": None,
            "revoked_at": None,
        },
    }
    attempts = db.scalars(select(LoginAttempt)).all()
    assert [(a.username, a.client_ip, a.succeeded) for a in attempts] == [
        ("lena", "testclient", True)
    ]

    assert me(client, token) == (200, user_json(labeler))
    assert reload(db, record).last_used_at is not None


def test_token_login_takes_a_name_and_lifetime(
    client: TestClient, db: Session, labeler: User
) -> None:
    result = token_login(client, "lena", PASSWORD, token_name="nightly", expires_in_days=30)

    assert result["status"] == 201
    record = token_record(db, result["body"]["token"])
    assert record.name == "nightly"
    assert record.expires_at is not None
    assert abs(record.expires_at - record.created_at - timedelta(days=30)) < timedelta(seconds=5)
    assert result["body"]["info"] == token_json(record)


@pytest.mark.parametrize(
    ("username", "password"),
    [("lena", "not the password"), ("nobody", PASSWORD), ("nobody", "not the password")],
)
def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient, db: Session, labeler: User, username: str, password: str
) -> None:
    before = db_state(db, ("users", "api_tokens"))

    result = token_login(client, username, password)

    assert result["status"] == 401
    assert result["body"] == WRONG_CREDENTIALS
    assert result["headers"]["www-authenticate"] == "Bearer"
    assert db_state(db, ("users", "api_tokens")) == before
    attempts = db.scalars(select(LoginAttempt)).all()
    assert [(a.username, a.succeeded) for a in attempts] == [(username, False)]


def test_deactivated_user_learns_it_only_with_the_right_password(
    client: TestClient, db: Session
) -> None:
    make_user(db, "gone", active=False)
    before = db_state(db, ("users", "api_tokens"))

    right = token_login(client, "gone", PASSWORD)
    wrong = token_login(client, "gone", "not the password")

    assert right["status"] == 401
    assert right["body"] == error(
        "authentication_failed", "this account is deactivated; ask an admin"
    )
    assert right["headers"]["www-authenticate"] == "Bearer"
    assert wrong["status"] == 401
    assert wrong["body"] == WRONG_CREDENTIALS
    assert db_state(db, ("users", "api_tokens")) == before
    attempts = db.scalars(select(LoginAttempt).order_by(LoginAttempt.id)).all()
    assert [(a.username, a.succeeded) for a in attempts] == [("gone", False), ("gone", False)]


def test_user_who_must_change_password_gets_403_and_no_token(
    client: TestClient, db: Session, labeler: User
) -> None:
    labeler.must_change_password = True
    db.commit()
    before = db_state(db, ("users", "api_tokens"))

    result = token_login(client, "lena", PASSWORD)

    assert result["status"] == 403
    assert result["body"] == error(
        "permission_denied", "change the generated password first (log in to the web app)"
    )
    assert db_state(db, ("users", "api_tokens")) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"password": PASSWORD}, "username", "Field required"),
        ({"username": "lena"}, "password", "Field required"),
        ({"username": "lena", "password": PASSWORD, "remember": True}, "remember", None),
        ({"username": "lena", "password": PASSWORD, "expires_in_days": 0}, "expires_in_days", None),
        ({"username": "lena", "password": PASSWORD, "token_name": ""}, "token_name", None),
        # Once 500s on PostgreSQL, before login (the rate-limit query) or in argon2.
        ({"username": "le\x00na", "password": PASSWORD}, "username", NUL),
        ({"username": "lena", "password": "correct\ud800horse"}, "password", SURROGATE),
        ({"username": "lena", "password": PASSWORD, "token_name": "ci\x00"}, "token_name", NUL),
    ],
)
def test_token_login_with_bad_body_is_422(
    client: TestClient,
    db: Session,
    labeler: User,
    body: Json,
    field: str,
    message: str | None,
) -> None:
    before = db_state(db)

    # ASCII escapes, so a lone surrogate travels as "\\ud800", as a client's JSON encoder sends it.
    response = client.post(
        f"{API}/auth/token", content=json.dumps(body), headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)
    if message is not None:
        assert response.json() == validation_error(message, field)
    assert db_state(db) == before


# --- rate limit -----------------------------------------------------------------------------


def fail_logins(client: TestClient, username: str, times: int) -> None:
    for _ in range(times):
        assert token_login(client, username, "not the password")["status"] == 401


def seconds_until_unlocked(db: Session, settings: Settings) -> int:
    """When the oldest failure leaves the window, as the Retry-After header should say."""
    oldest = db.scalar(select(func.min(LoginAttempt.attempted_at)))
    assert oldest is not None
    unlocked = oldest + timedelta(seconds=settings.login_window_seconds)
    return math.ceil((unlocked - utcnow()).total_seconds())


def test_five_failures_lock_the_username_even_for_the_right_password(
    client: TestClient, db: Session, settings: Settings, labeler: User, researcher: User
) -> None:
    fail_logins(client, "LENA", 5)  # any case counts for the one username
    before = db_state(db)

    for password in (PASSWORD, "not the password"):
        result = token_login(client, "lena", password)
        assert result["status"] == 429
        assert result["body"] == RATE_LIMITED
        retry_after = int(result["headers"]["retry-after"])
        expected = seconds_until_unlocked(db, settings)  # a moment later: at most that
        assert expected <= retry_after <= expected + 5
        assert 840 < retry_after <= settings.login_window_seconds

    # Refused before the password is checked, so not even recorded as attempts.
    assert db_state(db) == before
    assert count(db, LoginAttempt) == 5
    # Other usernames are not locked.
    assert token_login(client, "rhea", PASSWORD)["status"] == 201


def test_four_failures_do_not_lock(client: TestClient, labeler: User) -> None:
    fail_logins(client, "lena", 4)

    assert token_login(client, "lena", PASSWORD)["status"] == 201


def test_failures_older_than_the_window_no_longer_count(
    client: TestClient, db: Session, settings: Settings, labeler: User
) -> None:
    fail_logins(client, "lena", 5)
    assert token_login(client, "lena", PASSWORD)["status"] == 429

    window = timedelta(seconds=settings.login_window_seconds)
    db.execute(update(LoginAttempt).values(attempted_at=utcnow() - window - timedelta(seconds=1)))
    db.commit()

    assert token_login(client, "lena", PASSWORD)["status"] == 201


def test_retry_after_counts_from_the_oldest_failure(
    client: TestClient, db: Session, labeler: User
) -> None:
    fail_logins(client, "lena", 5)
    db.execute(update(LoginAttempt).values(attempted_at=utcnow() - timedelta(seconds=600)))
    db.commit()

    result = token_login(client, "lena", PASSWORD)

    assert result["status"] == 429
    assert 290 <= int(result["headers"]["retry-after"]) <= 300
    assert result["body"] == error(
        "rate_limited", "too many failed logins; try again in 5 minute(s)"
    )


def test_failures_from_one_address_lock_every_username(
    client: TestClient, settings: Settings, labeler: User
) -> None:
    settings.login_max_failures_per_ip = 3
    for username in ("alpha", "beta", "gamma"):
        fail_logins(client, username, 1)

    result = token_login(client, "lena", PASSWORD)

    assert result["status"] == 429
    assert result["body"] == RATE_LIMITED
    assert "retry-after" in result["headers"]


# --- /me and Bearer tokens ------------------------------------------------------------------


def test_me_returns_the_token_owner(client: TestClient, db: Session, researcher: User) -> None:
    assert me(client, make_token(db, researcher)) == (200, user_json(researcher))


def test_bearer_scheme_is_case_insensitive(client: TestClient, db: Session, labeler: User) -> None:
    token = make_token(db, labeler)

    response = client.get(f"{API}/me", headers={"Authorization": f"bearer   {token}  "})

    assert response.status_code == 200
    assert response.json()["username"] == "lena"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, NO_TOKEN),
        ({"Authorization": ""}, NO_TOKEN),
        ({"Authorization": "Bearer"}, NO_TOKEN),
        ({"Authorization": "Bearer    "}, NO_TOKEN),
        ({"Authorization": "Basic bGVuYTpjb3JyZWN0IGhvcnNl"}, NO_TOKEN),
        ({"Authorization": "Token smy_abc"}, NO_TOKEN),
        ({"Authorization": "Bearer garbage"}, BAD_TOKEN),
        ({"Authorization": "Bearer smy_" + "A" * 43}, BAD_TOKEN),
    ],
    ids=["none", "empty", "scheme-only", "blank", "basic", "token-scheme", "garbage", "unknown"],
)
def test_missing_or_garbage_authorization_is_401(
    client: TestClient, db: Session, labeler: User, headers: dict[str, str], expected: Json
) -> None:
    make_token(db, labeler)
    before = db_state(db)

    response = client.get(f"{API}/me", headers=headers)

    assert response.status_code == 401
    assert response.json() == expected
    assert response.headers["www-authenticate"] == "Bearer"
    assert db_state(db) == before


def test_token_stored_hash_is_not_a_token(client: TestClient, db: Session, labeler: User) -> None:
    token = make_token(db, labeler)

    response = client.get(f"{API}/me", headers=bearer(token_record(db, token).token_hash))

    assert response.status_code == 401
    assert response.json() == BAD_TOKEN


def test_expired_token_is_401(client: TestClient, db: Session, labeler: User) -> None:
    token = make_token(db, labeler)
    assert me(client, token)[0] == 200
    record = token_record(db, token)
    record.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    # Changed behind the app's back, as another process would: the app's token cache would
    # notice within a second (tests/services/test_token_cache.py); here it is told at once.
    auth.forget_cached_tokens()

    assert_refused_token(client, token)


def test_token_expiring_later_still_works(client: TestClient, db: Session, labeler: User) -> None:
    token = make_token(db, labeler)
    record = token_record(db, token)
    record.expires_at = utcnow() + timedelta(minutes=1)
    db.commit()

    assert me(client, token)[0] == 200


def test_token_of_deactivated_user_is_401_and_stays_so_after_reactivation(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    token = make_token(db, labeler)
    as_admin = bearer(make_token(db, admin))

    client.patch(f"{API}/users/{labeler.id}", headers=as_admin, json={"is_active": False})
    assert_refused_token(client, token)

    # Deactivation revoked it for good: the reactivated labeler makes a new one.
    client.patch(f"{API}/users/{labeler.id}", headers=as_admin, json={"is_active": True})
    assert_refused_token(client, token)
    assert me(client, make_token(db, labeler))[0] == 200


def test_token_of_deleted_user_is_401(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    token = make_token(db, labeler)
    assert me(client, token)[0] == 200

    response = client.delete(f"{API}/users/{labeler.id}", headers=bearer(make_token(db, admin)))

    assert response.status_code == 204
    assert_refused_token(client, token)
    assert count(db, ApiToken, ApiToken.token_hash == token_hash(token)) == 0


# --- /tokens --------------------------------------------------------------------------------


def test_create_token_strips_the_name_and_sets_expiry(
    client: TestClient, db: Session, labeler: User
) -> None:
    response = client.post(
        f"{API}/tokens",
        headers=bearer(make_token(db, labeler)),
        json={"name": "  ci runner ", "expires_in_days": 7},
    )

    assert response.status_code == 201
    token = response.json()["token"]
    record = token_record(db, token)
    assert (record.user_id, record.name) == (labeler.id, "ci runner")
    assert record.expires_at is not None
    assert abs(record.expires_at - utcnow() - timedelta(days=7)) < timedelta(minutes=1)
    assert response.json() == {"token": token, "info": token_json(record)}
    assert me(client, token) == (200, user_json(labeler))


def test_list_tokens_shows_only_ones_own_newest_first(
    client: TestClient, db: Session, labeler: User, researcher: User
) -> None:
    first = make_token(db, labeler, "first")
    second = make_token(db, labeler, "second")
    make_token(db, researcher, "not hers")

    response = client.get(f"{API}/tokens", headers=bearer(first))

    assert response.status_code == 200
    records = [token_record(db, second), token_record(db, first)]
    assert response.json() == [token_json(reload(db, record)) for record in records]
    assert [entry["name"] for entry in response.json()] == ["second", "first"]
    assert response.json()[1]["last_used_at"] is not None  # the token just used


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ci", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ci", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "ci", "scopes": ["all"]}, "scopes"),
        ({}, "name"),
        ({"name": "c\x00i"}, "name"),
    ],
)
def test_create_token_with_bad_body_is_422(
    client: TestClient, db: Session, labeler: User, body: Json, field: str
) -> None:
    headers = bearer(make_token(db, labeler))
    before = db_state(db)

    response = client.post(f"{API}/tokens", headers=headers, json=body)

    assert response.status_code == 422
    problem = response.json()["error"]
    assert (problem["code"], problem["field"]) == ("invalid_request", field)
    assert db_state(db) == before


def test_revoke_token_makes_it_401_and_is_idempotent(
    client: TestClient, db: Session, labeler: User
) -> None:
    headers = bearer(make_token(db, labeler, "keeper"))
    doomed = make_token(db, labeler, "doomed")
    record = token_record(db, doomed)
    assert me(client, doomed)[0] == 200

    response = client.delete(f"{API}/tokens/{record.id}", headers=headers)

    assert response.status_code == 200
    stored = reload(db, record)
    assert stored.revoked_at is not None
    assert response.json() == token_json(stored)
    assert_refused_token(client, doomed)
    assert me(client, make_token(db, labeler))[0] == 200  # only that token

    again = client.delete(f"{API}/tokens/{record.id}", headers=headers)

    assert again.status_code == 200
    assert again.json() == response.json()


def test_a_token_can_revoke_itself(client: TestClient, db: Session, labeler: User) -> None:
    token = make_token(db, labeler)

    response = client.delete(f"{API}/tokens/{token_record(db, token).id}", headers=bearer(token))

    assert response.status_code == 200
    assert_refused_token(client, token)


def test_revoking_another_users_token_is_404(
    client: TestClient, db: Session, admin: User, labeler: User
) -> None:
    theirs = make_token(db, labeler)
    record = token_record(db, theirs)
    as_admin = bearer(make_token(db, admin))
    before = db_state(db)

    # Not even an admin: someone else's token id is "not found", revealing nothing.
    response = client.delete(f"{API}/tokens/{record.id}", headers=as_admin)

    assert response.status_code == 404
    assert response.json() == error("not_found", f"no token with id {record.id}")
    assert db_state(db) == before
    assert reload(db, record).revoked_at is None
    assert me(client, theirs)[0] == 200


def test_revoking_unknown_token_is_404(client: TestClient, db: Session, labeler: User) -> None:
    headers = bearer(make_token(db, labeler))
    before = db_state(db)

    response = client.delete(f"{API}/tokens/999999", headers=headers)

    assert response.status_code == 404
    assert response.json() == error("not_found", "no token with id 999999")
    assert db_state(db) == before


# --- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"{bad", b"{'username': 'lena'}", b'{"username": "lena",}', b"lena"]
)
def test_malformed_json_is_422_invalid_request(
    client: TestClient, db: Session, labeler: User, content: bytes
) -> None:
    before = db_state(db)

    response = client.post(
        f"{API}/auth/token", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    body = response.json()
    problems = body["error"].pop("problems")
    assert body == error("invalid_request", "the request body is not valid JSON")
    assert [problem["type"] for problem in problems] == ["json_invalid"]
    assert db_state(db) == before


def test_missing_body_is_422_body_required(client: TestClient, db: Session) -> None:
    before = db_state(db)

    response = client.post(f"{API}/auth/token", headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json() == validation_error("Field required", None)
    assert db_state(db) == before


def test_malformed_json_changes_nothing_for_signed_in_requests(
    client: TestClient, db: Session, admin: User
) -> None:
    headers = {**bearer(make_token(db, admin)), "Content-Type": "application/json"}
    before = db_state(db)

    for method, path in (("POST", "/users"), ("POST", "/tokens"), ("POST", "/projects")):
        response = client.request(method, f"{API}{path}", content=b'{"name": ', headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["message"] == "the request body is not valid JSON"

    assert db_state(db) == before


# --- /me/password ---------------------------------------------------------------------------


def test_change_password_swaps_old_for_new(
    client: TestClient, db: Session, settings: Settings, labeler: User
) -> None:
    auth.start_session(db, settings, labeler, client_ip="10.0.0.1", user_agent="browser")
    response = client.post(
        f"{API}/me/password",
        headers=bearer(make_token(db, labeler)),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 204
    assert response.content == b""
    stored = reload(db, labeler)
    assert verify_password(stored.password_hash, NEW_PASSWORD)
    assert token_login(client, "lena", PASSWORD)["body"] == WRONG_CREDENTIALS
    assert token_login(client, "lena", NEW_PASSWORD)["status"] == 201
    # No browser asked for the change, so every web login of the user ends.
    assert count(db, UserSession, UserSession.user_id == labeler.id) == 0


def test_change_password_clears_must_change_password(
    client: TestClient, db: Session, admin: User
) -> None:
    created = client.post(
        f"{API}/users", headers=bearer(make_token(db, admin)), json={"username": "newbie"}
    ).json()
    generated = created["generated_password"]
    newbie = db.get(User, created["user"]["id"])
    assert newbie is not None
    assert token_login(client, "newbie", generated)["status"] == 403

    response = client.post(
        f"{API}/me/password",
        headers=bearer(make_token(db, newbie)),
        json={"current_password": generated, "new_password": NEW_PASSWORD},
    )

    assert response.status_code == 204
    assert reload(db, newbie).must_change_password is False
    assert token_login(client, "newbie", NEW_PASSWORD)["status"] == 201


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            {"current_password": PASSWORD, "new_password": PASSWORD},
            422,
            error(
                "invalid_input", "the new password must differ from the current one", "new_password"
            ),
        ),
        (
            {"current_password": PASSWORD, "new_password": "short"},
            422,
            validation_error(
                "Value error, a password needs at least 10 characters", "new_password"
            ),
        ),
        (
            {"current_password": PASSWORD},
            422,
            validation_error("Field required", "new_password"),
        ),
        (
            {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
            422,
            validation_error("Extra inputs are not permitted", "confirm"),
        ),
    ],
    ids=["same", "short", "missing", "unknown-field"],
)
def test_refused_password_change_keeps_the_old_one(
    client: TestClient, db: Session, labeler: User, body: Json, status: int, expected: Json
) -> None:
    headers = bearer(make_token(db, labeler))
    before = db_state(db)

    response = client.post(f"{API}/me/password", headers=headers, json=body)

    assert response.status_code == status
    assert response.json() == expected
    assert db_state(db) == before
    assert verify_password(reload(db, labeler).password_hash, PASSWORD)


def test_wrong_current_password_is_refused_counted_and_rate_limited(
    client: TestClient, db: Session, settings: Settings, labeler: User
) -> None:
    """Not 401 (the token is fine), and a stolen token cannot guess the password forever."""
    headers = bearer(make_token(db, labeler))
    wrong = {"current_password": "not the password", "new_password": NEW_PASSWORD}

    for attempt in range(settings.login_max_failures):
        response = client.post(f"{API}/me/password", headers=headers, json=wrong)
        assert response.status_code == 403, attempt
        assert "www-authenticate" not in response.headers
        assert response.json() == error(
            "wrong_password", "the current password is wrong", "current_password"
        )
    assert count(db, LoginAttempt, LoginAttempt.username == "lena") == settings.login_max_failures

    # Now even the right password waits: the limit is the login limit, shared with /login.
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    limited = client.post(f"{API}/me/password", headers=headers, json=right)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["error"]["code"] == "rate_limited"
    assert verify_password(reload(db, labeler).password_hash, PASSWORD)
