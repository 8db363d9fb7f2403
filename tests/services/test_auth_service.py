"""app.services.auth: password logins with a rate limit, browser sessions, API tokens."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import AuthenticationFailed, NotFound, RateLimited
from app.models import ApiToken, LoginAttempt, User, UserSession
from app.models.base import utcnow
from app.schemas.users import TokenCreate
from app.services import auth
from app.settings import Settings
from tests.conftest import PASSWORD, make_token, make_user

IP = "192.0.2.10"
OTHER_IP = "198.51.100.7"


@pytest.fixture
def limits(settings: Settings) -> Settings:
    """Small limits so a test reaches them in a few attempts."""
    return settings.model_copy(
        update={
            "login_max_failures": 3,
            "login_max_failures_per_ip": 5,
            "login_window_seconds": 600,
        }
    )


def attempts(db: Session) -> list[tuple[str, str, bool]]:
    rows = db.execute(
        select(LoginAttempt.username, LoginAttempt.client_ip, LoginAttempt.succeeded).order_by(
            LoginAttempt.id
        )
    )
    return [(username, ip, succeeded) for username, ip, succeeded in rows]


def fail(db: Session, settings: Settings, username: str, client_ip: str = IP) -> None:
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(
            db, settings, username=username, password="wrong password!", client_ip=client_ip
        )


def add_failures(db: Session, username: str, client_ip: str, *, ago: timedelta, n: int) -> None:
    db.add_all(
        LoginAttempt(
            username=username, client_ip=client_ip, succeeded=False, attempted_at=utcnow() - ago
        )
        for _ in range(n)
    )
    db.commit()


# --- authenticate -----------------------------------------------------------------------------


def test_authenticate_success_returns_the_user_and_records_the_attempt(
    db: Session, settings: Settings, labeler: User
) -> None:
    user = auth.authenticate(db, settings, username="  LENA ", password=PASSWORD, client_ip=IP)
    assert user is labeler
    assert attempts(db) == [("lena", IP, True)]


def test_wrong_password_and_unknown_user_fail_alike_and_are_recorded(
    db: Session, settings: Settings, labeler: User
) -> None:
    for username in ("lena", "nobody"):
        with pytest.raises(AuthenticationFailed) as caught:
            auth.authenticate(db, settings, username=username, password="nope-nope", client_ip=IP)
        assert caught.value.message == auth.WRONG_CREDENTIALS
    assert attempts(db) == [("lena", IP, False), ("nobody", IP, False)]


def test_deactivated_user_with_right_password_is_told_so(db: Session, settings: Settings) -> None:
    make_user(db, "gone", active=False)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        auth.authenticate(db, settings, username="gone", password=PASSWORD, client_ip=IP)


def test_deactivated_user_with_wrong_password_gets_the_generic_answer(
    db: Session, settings: Settings
) -> None:
    make_user(db, "gone", active=False)
    with pytest.raises(AuthenticationFailed) as caught:
        auth.authenticate(db, settings, username="gone", password="nope-nope", client_ip=IP)
    assert caught.value.message == auth.WRONG_CREDENTIALS


def test_too_many_failures_for_a_username_are_rate_limited(
    db: Session, limits: Settings, labeler: User
) -> None:
    # Spread over addresses, so only the per-username limit (3) can be what trips.
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        fail(db, limits, "lena", ip)
    with pytest.raises(RateLimited) as caught:
        auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip="10.0.0.4")
    assert 0 < caught.value.retry_after <= limits.login_window_seconds
    assert caught.value.status_code == 429
    # The refused attempt was not even checked, so it is not recorded.
    assert len(attempts(db)) == 3
    # Another account from the same addresses still logs in.
    make_user(db, "maya")
    assert auth.authenticate(db, limits, username="maya", password=PASSWORD, client_ip="10.0.0.1")


def test_too_many_failures_from_one_address_are_rate_limited(
    db: Session, limits: Settings, labeler: User
) -> None:
    # Five different usernames, one failure each: under the per-username limit every time.
    for username in ("u1", "u2", "u3", "u4", "u5"):
        fail(db, limits, username, IP)
    with pytest.raises(RateLimited) as caught:
        auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip=IP)
    assert 0 < caught.value.retry_after <= limits.login_window_seconds
    # The same account from another address is fine.
    user = auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip=OTHER_IP)
    assert user is labeler


def test_retry_after_counts_down_from_the_oldest_failure_in_the_window(
    db: Session, limits: Settings, labeler: User
) -> None:
    window = timedelta(seconds=limits.login_window_seconds)
    add_failures(db, "lena", IP, ago=window - timedelta(seconds=120), n=1)
    add_failures(db, "lena", IP, ago=timedelta(seconds=10), n=2)
    with pytest.raises(RateLimited) as caught:
        auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip=IP)
    assert 118 <= caught.value.retry_after <= 120
    assert caught.value.message == "too many failed logins; try again in 2 minute(s)"


def test_failures_older_than_the_window_do_not_count(
    db: Session, limits: Settings, labeler: User
) -> None:
    old = timedelta(seconds=limits.login_window_seconds + 60)
    add_failures(db, "lena", IP, ago=old, n=10)
    assert auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip=IP)
    assert attempts(db)[-1] == ("lena", IP, True)


def test_successful_logins_do_not_count_as_failures(
    db: Session, limits: Settings, labeler: User
) -> None:
    for _ in range(limits.login_max_failures + 2):
        auth.authenticate(db, limits, username="lena", password=PASSWORD, client_ip=IP)
    assert [succeeded for _, _, succeeded in attempts(db)] == [True] * 5


# --- sessions ---------------------------------------------------------------------------------


def start(db: Session, settings: Settings, user: User) -> auth.NewSession:
    return auth.start_session(db, settings, user, client_ip=IP, user_agent="pytest/1.0")


def test_start_session_stores_only_the_hash_and_resolves(
    db: Session, settings: Settings, labeler: User
) -> None:
    new = start(db, settings, labeler)
    stored = new.session
    assert stored.user_id == labeler.id
    assert stored.token_hash == hashlib.sha256(new.token.encode()).hexdigest()
    assert stored.token_hash != new.token
    assert len(stored.csrf_token) >= 32
    assert (stored.client_ip, stored.user_agent) == (IP, "pytest/1.0")
    expected_expiry = utcnow() + timedelta(hours=settings.session_hours)
    assert abs(stored.expires_at - expected_expiry) < timedelta(minutes=1)

    resolved = auth.resolve_session(db, new.token)
    assert resolved is not None
    assert resolved == (stored, labeler)


def test_resolve_session_refuses_unknown_and_expired_tokens(
    db: Session, settings: Settings, labeler: User
) -> None:
    assert auth.resolve_session(db, "no-such-token") is None
    new = start(db, settings, labeler)
    new.session.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert auth.resolve_session(db, new.token) is None


def test_resolve_session_refuses_a_deactivated_user(
    db: Session, settings: Settings, labeler: User
) -> None:
    new = start(db, settings, labeler)
    labeler.is_active = False
    db.commit()
    assert auth.resolve_session(db, new.token) is None


def test_resolve_session_touches_last_seen_at_at_most_once_a_minute(
    db: Session, settings: Settings, labeler: User
) -> None:
    new = start(db, settings, labeler)
    recent = utcnow() - timedelta(seconds=30)
    new.session.last_seen_at = recent
    db.commit()
    auth.resolve_session(db, new.token)
    assert new.session.last_seen_at == recent

    new.session.last_seen_at = utcnow() - timedelta(minutes=5)
    db.commit()
    auth.resolve_session(db, new.token)
    assert abs(new.session.last_seen_at - utcnow()) < timedelta(seconds=10)


def test_end_session_deletes_it(db: Session, settings: Settings, labeler: User) -> None:
    new = start(db, settings, labeler)
    other = start(db, settings, labeler)
    auth.end_session(db, new.token)
    assert auth.resolve_session(db, new.token) is None
    assert auth.resolve_session(db, other.token) is not None
    assert db.scalars(select(UserSession.token_hash)).all() == [other.session.token_hash]


def test_starting_a_session_sweeps_expired_ones(
    db: Session, settings: Settings, labeler: User, admin: User
) -> None:
    stale = start(db, settings, admin)
    stale.session.expires_at = utcnow() - timedelta(hours=1)
    db.commit()
    fresh = start(db, settings, labeler)
    assert db.scalars(select(UserSession.token_hash)).all() == [fresh.session.token_hash]


# --- API tokens -------------------------------------------------------------------------------


def test_created_token_resolves_and_only_its_hash_is_stored(db: Session, labeler: User) -> None:
    record, token = auth.create_api_token(db, labeler, TokenCreate(name="  my script "))
    assert token.startswith("smy_")
    assert record.prefix == token[:10]
    assert record.name == "my script"
    assert record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert record.expires_at is None
    assert record.last_used_at is None
    assert db.scalar(select(ApiToken.id).where(ApiToken.token_hash == token)) is None

    assert auth.resolve_api_token(db, token) is labeler
    assert record.last_used_at is not None
    assert abs(record.last_used_at - utcnow()) < timedelta(seconds=10)


def test_token_with_expiry_days_expires_then(db: Session, labeler: User) -> None:
    record, token = auth.create_api_token(db, labeler, TokenCreate(name="ci", expires_in_days=30))
    assert record.expires_at is not None
    assert abs(record.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert auth.resolve_api_token(db, token) is labeler
    record.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert auth.resolve_api_token(db, token) is None


def test_unknown_revoked_and_inactive_user_tokens_resolve_to_none(
    db: Session, labeler: User, researcher: User
) -> None:
    assert auth.resolve_api_token(db, "smy_not-a-token") is None

    record, revoked = auth.create_api_token(db, labeler, TokenCreate(name="old"))
    auth.revoke_api_token(db, labeler, record.id)
    assert auth.resolve_api_token(db, revoked) is None

    inactive = make_token(db, researcher)
    researcher.is_active = False
    db.commit()
    assert auth.resolve_api_token(db, inactive) is None


def test_revoking_is_idempotent_and_keeps_the_first_date(db: Session, labeler: User) -> None:
    record, _ = auth.create_api_token(db, labeler, TokenCreate(name="t"))
    first = auth.revoke_api_token(db, labeler, record.id).revoked_at
    assert first is not None
    assert auth.revoke_api_token(db, labeler, record.id).revoked_at == first


def test_revoking_someone_elses_or_a_missing_token_is_not_found(
    db: Session, labeler: User, researcher: User
) -> None:
    record, token = auth.create_api_token(db, researcher, TokenCreate(name="theirs"))
    with pytest.raises(NotFound, match=f"no token with id {record.id}"):
        auth.revoke_api_token(db, labeler, record.id)
    with pytest.raises(NotFound):
        auth.revoke_api_token(db, labeler, 999_999)
    assert record.revoked_at is None
    assert auth.resolve_api_token(db, token) is researcher


def test_list_api_tokens_newest_first_and_only_ones_own(
    db: Session, labeler: User, researcher: User
) -> None:
    make_token(db, labeler, "first")
    make_token(db, researcher, "not mine")
    make_token(db, labeler, "second")
    assert [token.name for token in auth.list_api_tokens(db, labeler)] == ["second", "first"]
