"""Queued runs and dataset jobs whose broker message was lost are sent again, once per period,
and only those: against the embedded broker and against a real Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.models import (
    DatasetJob,
    DatasetJobKind,
    DatasetJobStatus,
    Project,
    Run,
    RunKind,
    RunStatus,
)
from app.models.base import utcnow
from app.services.dataset_jobs import TASK_NAME, send_to_worker
from app.services.resending import Resent, held_messages, resend_lost_messages
from app.services.runs.queueing import TRAIN_TASK, enqueue_run
from app.settings import Settings
from tests.conftest import REDIS_URL, redis_db, unavailable
from tests.factories import make_project

PERIOD = timedelta(minutes=5)
NOTHING = Resent(runs=[], dataset_jobs=[])


@pytest.fixture
def redis_broker(settings: Settings) -> Iterator[Settings]:
    """The test's settings on a Redis database of this test process's own, emptied before and
    after."""
    import redis

    url = f"{REDIS_URL}/{redis_db(2)}"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    client.flushdb()
    try:
        yield settings.model_copy(update={"broker_url": url})
    finally:
        client.flushdb()


@pytest.fixture(params=["embedded", "redis"])
def broker(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The embedded broker (a folder of the test's own), or Redis."""
    if request.param == "embedded":
        return settings
    redis_settings: Settings = request.getfixturevalue("redis_broker")
    return redis_settings


def lose_every_message(settings: Settings) -> None:
    """What a Redis without persistence does when it restarts."""
    if settings.uses_embedded_broker:
        for message in (settings.broker_dir / "queue").iterdir():
            message.unlink()
        return
    import redis

    redis.Redis.from_url(settings.broker_url).flushdb()


def message_count(settings: Settings) -> int:
    if settings.uses_embedded_broker:
        folder = settings.broker_dir / "queue"
        return len(list(folder.iterdir())) if folder.is_dir() else 0
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    return int(client.llen("gpu")) + int(client.llen("default")) + int(client.hlen("unacked"))


def queued_run(db: Session, project: Project, created_at: datetime, **values: Any) -> Run:
    run = Run(
        project_id=project.id,
        kind=RunKind.sft,
        base_model_ref="gpt2",
        created_at=created_at,
        **values,
    )
    db.add(run)
    db.commit()
    return run


def queued_job(db: Session, project: Project, created_at: datetime, **values: Any) -> DatasetJob:
    job = DatasetJob(
        project_id=project.id,
        kind=DatasetJobKind.import_rows,
        params={},
        source_name="rows.jsonl",
        rows_done=0,
        bytes_done=0,
        created_at=created_at,
        **values,
    )
    db.add(job)
    db.commit()
    return job


def test_a_lost_message_is_sent_again_once_per_period(db: Session, broker: Settings) -> None:
    project = make_project(db)
    now = utcnow()
    run = queued_run(db, project, now - timedelta(minutes=10))
    job = queued_job(db, project, now - timedelta(minutes=10))
    enqueue_run(broker, run.id)
    send_to_worker(broker, job.id)
    lose_every_message(broker)
    assert held_messages(broker) == set()

    assert resend_lost_messages(db, broker, older_than=PERIOD, now=now) == Resent(
        runs=[run.id], dataset_jobs=[job.id]
    )
    assert held_messages(broker) == {(TRAIN_TASK, run.id), (TASK_NAME, job.id)}
    assert message_count(broker) == 2
    db.refresh(run)
    db.refresh(job)
    assert (run.status, run.resent_at) == (RunStatus.queued, now)
    assert (job.status, job.resent_at) == (DatasetJobStatus.queued, now)

    # Its message is there now: nothing more is sent.
    later = now + timedelta(minutes=6)
    assert resend_lost_messages(db, broker, older_than=PERIOD, now=later) == NOTHING
    assert message_count(broker) == 2

    # Lost again: not before a period has passed since it was sent again.
    lose_every_message(broker)
    soon = now + timedelta(minutes=4)
    assert resend_lost_messages(db, broker, older_than=PERIOD, now=soon) == NOTHING
    assert message_count(broker) == 0
    assert resend_lost_messages(db, broker, older_than=PERIOD, now=later) == Resent(
        runs=[run.id], dataset_jobs=[job.id]
    )
    assert message_count(broker) == 2
    db.refresh(run)
    assert run.resent_at == later


def test_a_message_the_broker_still_holds_is_not_sent_again(db: Session, broker: Settings) -> None:
    project = make_project(db)
    now = utcnow()
    run = queued_run(db, project, now - timedelta(hours=2))
    job = queued_job(db, project, now - timedelta(hours=2))
    enqueue_run(broker, run.id)
    send_to_worker(broker, job.id)

    assert resend_lost_messages(db, broker, older_than=PERIOD, now=now) == NOTHING
    assert message_count(broker) == 2
    db.refresh(run)
    db.refresh(job)
    assert (run.resent_at, job.resent_at) == (None, None)


def test_young_running_and_finished_ones_are_left_alone(db: Session, broker: Settings) -> None:
    project = make_project(db)
    now = utcnow()
    old = now - timedelta(hours=1)
    young_run = queued_run(db, project, now - timedelta(minutes=4))
    young_job = queued_job(db, project, now - timedelta(minutes=4))
    runs = [
        queued_run(db, project, old, status=RunStatus.running, worker_name="w", heartbeat_at=now),
        queued_run(db, project, old, status=RunStatus.succeeded, finished_at=now),
        queued_run(db, project, old, status=RunStatus.failed, error="x", finished_at=now),
        queued_run(db, project, old, status=RunStatus.cancelled, finished_at=now),
    ]
    jobs = [
        queued_job(db, project, old, status=DatasetJobStatus.running, started_at=now),
        queued_job(db, project, old, status=DatasetJobStatus.succeeded, finished_at=now),
        queued_job(db, project, old, status=DatasetJobStatus.failed, error="x", finished_at=now),
    ]

    assert resend_lost_messages(db, broker, older_than=PERIOD, now=now) == NOTHING
    assert message_count(broker) == 0
    for row in [young_run, young_job, *runs, *jobs]:
        db.refresh(row)
        assert row.resent_at is None
    # The young ones, once old enough, are sent.
    assert resend_lost_messages(
        db, broker, older_than=PERIOD, now=now + timedelta(minutes=2)
    ) == Resent(runs=[young_run.id], dataset_jobs=[young_job.id])


def test_a_message_a_worker_holds_unacknowledged_on_redis_is_not_lost(
    db: Session, redis_broker: Settings
) -> None:
    """A worker that took the message (prefetched, or running it: tasks are acknowledged late)
    keeps it in Redis's `unacked` hash, not in the queue's list."""
    import redis

    from worker.celery_app import celery_for

    project = make_project(db)
    now = utcnow()
    run = queued_run(db, project, now - timedelta(hours=1))
    enqueue_run(redis_broker, run.id)
    with celery_for(redis_broker).connection_for_read() as connection:
        channel = connection.default_channel
        taken = channel.basic_get("gpu", no_ack=False)
        assert taken is not None
        client = redis.Redis.from_url(redis_broker.broker_url)
        assert (client.llen("gpu"), client.hlen("unacked")) == (0, 1)

        assert held_messages(redis_broker) == {(TRAIN_TASK, run.id)}
        assert resend_lost_messages(db, redis_broker, older_than=PERIOD, now=now) == NOTHING
        taken.ack()
    assert message_count(redis_broker) == 0


def test_a_broker_that_cannot_be_reached_changes_nothing_and_is_logged(
    db: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    project = make_project(db)
    now = utcnow()
    run = queued_run(db, project, now - timedelta(hours=1))

    with caplog.at_level(logging.WARNING, logger="app.services.resending"):
        assert resend_lost_messages(db, down, older_than=PERIOD, now=now) == NOTHING
    db.refresh(run)
    assert (run.status, run.resent_at) == (RunStatus.queued, None)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        "could not look for lost job messages (1 queued for over 0:05:00): "
    )
    assert record.getMessage().endswith("; trying again at the next heartbeat")


def test_messages_of_other_tasks_and_other_ids_do_not_count(db: Session, broker: Settings) -> None:
    from app.services.runs.queueing import connected_sender

    project = make_project(db)
    now = utcnow()
    run = queued_run(db, project, now - timedelta(hours=1))
    with connected_sender(broker) as send:
        # The dataset task with the run's id, and the run's task with another id.
        send(TASK_NAME, run.id, "default")
        send(TRAIN_TASK, run.id + 1, None)
    assert resend_lost_messages(db, broker, older_than=PERIOD, now=now) == Resent(
        runs=[run.id], dataset_jobs=[]
    )
    assert held_messages(broker) == {
        (TASK_NAME, run.id),
        (TRAIN_TASK, run.id + 1),
        (TRAIN_TASK, run.id),
    }
