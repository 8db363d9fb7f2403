"""app.services.health: the database, broker and worker checks behind /healthz."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db import make_engine
from app.models import WorkerHeartbeat
from app.models.base import utcnow
from app.services import health
from app.settings import Settings
from tests.conftest import redis_db
from worker.heartbeat import record_beat

REDIS_BROKER_URL = f"redis://127.0.0.1:6379/{redis_db(2)}"


def embedded(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", broker_url="filesystem://")


# --- database ---------------------------------------------------------------------------------


def test_check_database_ok_names_the_backend(engine: Engine, backend: str) -> None:
    check = health.check_database(engine)
    assert check == health.Check(True, backend)


def test_check_database_reports_an_unreachable_database(tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'db.sqlite3'}")
    try:
        check = health.check_database(broken)
    finally:
        broken.dispose()
    assert check.ok is False
    assert check.detail.startswith("OperationalError: ")


# --- workers ----------------------------------------------------------------------------------


def test_check_workers_without_any_heartbeat_is_down(db: Session, settings: Settings) -> None:
    check = health.check_workers(db, settings)
    assert check == health.Check(False, "no worker has sent a heartbeat recently", {"workers": []})


def test_check_workers_after_a_heartbeat_is_up(db: Session, settings: Settings) -> None:
    record_beat(db, "celery@box", "default,gpu", utcnow())
    check = health.check_workers(db, settings)
    assert check.ok is True
    assert check.detail == "1 worker(s) alive"
    [listed] = check.extra["workers"]
    assert listed["name"] == "celery@box"
    assert listed["queues"] == ["default", "gpu"]
    assert listed["alive"] is True


def test_check_workers_with_a_stale_heartbeat_is_down(db: Session, settings: Settings) -> None:
    record_beat(db, "celery@box", "default", utcnow() - timedelta(hours=1))
    # Rewind the last beat past the staleness limit, as if the worker died.
    beat = db.get(WorkerHeartbeat, "celery@box")
    assert beat is not None
    beat.last_seen_at = utcnow() - timedelta(seconds=settings.worker_stale_seconds + 5)
    db.commit()

    check = health.check_workers(db, settings)
    assert check.ok is False
    assert check.detail == "no worker has sent a heartbeat recently"
    assert [worker["alive"] for worker in check.extra["workers"]] == [False]

    # A fresh beat from the same worker brings it back.
    record_beat(db, "celery@box", "default", utcnow())
    assert health.check_workers(db, settings).ok is True


def test_record_beat_updates_the_existing_row(db: Session, settings: Settings) -> None:
    record_beat(db, "celery@box", "default", utcnow())
    record_beat(db, "celery@box", "default,gpu", utcnow())
    [listed] = health.check_workers(db, settings).extra["workers"]
    assert listed["queues"] == ["default", "gpu"]


# --- broker -----------------------------------------------------------------------------------


def test_embedded_broker_is_down_until_its_folder_exists(tmp_path: Path) -> None:
    settings = embedded(tmp_path)
    before = health.check_broker(settings)
    assert before.ok is False
    assert before.detail == (
        f"embedded broker folder {settings.broker_dir / 'queue'} is missing or not writable"
    )

    settings.ensure_data_dir()
    after = health.check_broker(settings)
    assert after == health.Check(True, f"embedded (filesystem) at {settings.broker_dir}")


@pytest.fixture
def redis_server() -> None:
    try:
        redis.Redis.from_url(REDIS_BROKER_URL, socket_connect_timeout=1).ping()
    except Exception as error:
        pytest.skip(f"Redis not reachable at {REDIS_BROKER_URL}: {error}".splitlines()[0])


@pytest.mark.usefixtures("redis_server")
def test_redis_broker_that_answers_is_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", broker_url=REDIS_BROKER_URL)
    assert health.check_broker(settings) == health.Check(True, REDIS_BROKER_URL)


def test_redis_broker_on_a_closed_port_is_down(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", broker_url="redis://127.0.0.1:1/0")
    check = health.check_broker(settings)
    assert check.ok is False
    assert check.detail.startswith("OperationalError: ")
    assert "127.0.0.1:1" in check.detail


def test_broker_url_credentials_are_redacted() -> None:
    assert health._redacted("redis://user:s3cret@cache:6379/0") == "redis://***@cache:6379/0"
    assert health._redacted("redis://cache:6379/0") == "redis://cache:6379/0"


# --- everything together ----------------------------------------------------------------------


def test_health_is_ok_only_when_all_three_are(
    engine: Engine, db: Session, tmp_path: Path, backend: str
) -> None:
    settings = embedded(tmp_path)
    settings.ensure_data_dir()
    degraded = health.health(engine, db, settings)
    assert degraded.ok is False
    assert degraded.status == degraded.as_dict()["status"] == "degraded"

    record_beat(db, "celery@box", "default", utcnow())
    result = health.health(engine, db, settings)
    assert result.ok is True
    as_dict = result.as_dict()
    assert result.status == as_dict["status"] == "ok"
    assert as_dict["database"] == {"ok": True, "detail": backend, "extra": {}}
    assert as_dict["broker"]["ok"] is True
    assert as_dict["worker"]["detail"] == "1 worker(s) alive"
