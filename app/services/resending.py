"""Sending a queued job's id again when the broker lost its message.

A run or dataset job is queued in the database and its id travels to the workers as a broker
message. When the message is lost (a Redis without persistence restarted; a worker killed while
it held a message it had not started), the row stays `queued` for ever: the reapers only look at
running jobs. So every live worker's heartbeat also looks for rows queued for longer than
`queued_resend_seconds` and asks the broker itself whether it still holds a message for each;
those it does not hold are sent again, at most once per that period (`resent_at` says when).

Sending again cannot run a job twice: a worker claims the row in one conditional UPDATE
(queued -> running), and a message whose row is no longer queued is dropped. That also covers
the few milliseconds in which a worker has taken a message off the queue and not yet recorded
it as its own (Redis's `unacked` hash), where the message is found nowhere: the worst case is
one extra message, which the claim drops.

What "holds" means, per transport:
- Redis (kombu's transport): the queue's lists (one per priority step) and the `unacked` hash
  of messages delivered to a worker and not yet acknowledged. Tasks are acknowledged late
  (worker/celery_app.py), so a message stays there while its job runs and while a worker holds
  it prefetched.
- The embedded broker: the message files in its queue folder. A message a worker has taken
  lives only in that worker's memory, but with prefetch 1 and late acknowledgement a worker
  takes a message only when a process of its pool is free, and the job claims its row as soon
  as it starts, so such a row is queued for a moment only.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.models import DatasetJob, DatasetJobStatus, Run, RunStatus
from app.models.base import utcnow
from app.services.dataset_jobs.starting import TASK_NAME as DATASET_TASK
from app.services.runs.queueing import (
    CONNECT_TIMEOUT,
    SOCKET_TIMEOUT,
    TRAIN_TASK,
    BrokerUnreachable,
    connected_sender,
)
from app.settings import Settings

log = logging.getLogger(__name__)

# A message as the broker holds it: (task name, the job id it carries).
Held = tuple[str, int]


@dataclass(frozen=True)
class Resent:
    runs: list[int]
    dataset_jobs: list[int]


def resend_lost_messages(
    db: Session, settings: Settings, *, older_than: timedelta, now: datetime | None = None
) -> Resent:
    """Sends again the id of every run and dataset job queued for longer than `older_than`
    (and not sent again within it) whose message the broker no longer holds, and records when.
    When the broker cannot be read or written, nothing is sent and it is logged: the next
    beat tries again."""
    from worker.celery_app import DEFAULT_QUEUE

    now = now or utcnow()
    cutoff = now - older_than
    # Locked, so that two workers' heartbeats do not both send the same id.
    runs = list(
        db.scalars(
            select(Run)
            .where(
                Run.status == RunStatus.queued,
                Run.created_at < cutoff,
                or_(Run.resent_at.is_(None), Run.resent_at < cutoff),
            )
            .order_by(Run.id)
            .with_for_update(skip_locked=True)
        )
    )
    jobs = list(
        db.scalars(
            select(DatasetJob)
            .where(
                DatasetJob.status == DatasetJobStatus.queued,
                DatasetJob.created_at < cutoff,
                or_(DatasetJob.resent_at.is_(None), DatasetJob.resent_at < cutoff),
            )
            .order_by(DatasetJob.id)
            .with_for_update(skip_locked=True)
        )
    )
    resent = Resent([], [])
    if not runs and not jobs:
        # The usual case: the broker is not asked at all.
        db.rollback()
        return resent
    try:
        held = held_messages(settings)
        lost: list[tuple[Run | DatasetJob, str, str | None]] = [
            *((run, TRAIN_TASK, None) for run in runs if (TRAIN_TASK, run.id) not in held),
            *(
                (job, DATASET_TASK, DEFAULT_QUEUE)
                for job in jobs
                if (DATASET_TASK, job.id) not in held
            ),
        ]
        if lost:
            with connected_sender(settings) as send:
                for row, task, queue in lost:
                    send(task, row.id, queue)
                    row.resent_at = now
                    (resent.runs if isinstance(row, Run) else resent.dataset_jobs).append(row.id)
    except BrokerUnreachable as error:
        log.warning(
            "could not look for lost job messages (%d queued for over %s): %s; trying again at "
            "the next heartbeat",
            len(runs) + len(jobs),
            older_than,
            error.__cause__ or error,
        )
    # What was sent is recorded even when the broker went away half way.
    db.commit()
    return resent


def held_messages(settings: Settings) -> set[Held]:
    """Every (task name, job id) the settings' broker holds on the `default` and `gpu` queues,
    waiting or delivered and not yet acknowledged. Raises BrokerUnreachable when it cannot be
    reached, or is neither Redis nor the embedded broker."""
    from kombu.exceptions import OperationalError
    from kombu.transport import filesystem, redis

    from worker.celery_app import DEFAULT_QUEUE, GPU_QUEUE, celery_for

    queues = (DEFAULT_QUEUE, GPU_QUEUE)
    connection = celery_for(settings).connection_for_read(
        connect_timeout=CONNECT_TIMEOUT,
        transport_options={
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
            "max_retries": 0,
        },
    )
    failures = (OperationalError, OSError, *connection.connection_errors)
    try:
        channel = connection.default_channel
        if isinstance(channel, redis.Channel):
            raw = _redis_messages(channel, queues)
        elif isinstance(channel, filesystem.Channel):
            raw = _folder_messages(channel.data_folder_in, queues)
        else:
            # Smiley's brokers are Redis and the embedded one; another cannot be searched.
            raise BrokerUnreachable(
                f"{type(channel).__module__} cannot be searched for lost messages"
            )
    except failures as error:
        raise BrokerUnreachable(f"the broker is unreachable: {error}") from error
    finally:
        connection.release()
    return {held for message in raw if (held := _task_and_id(message)) is not None}


def _redis_messages(channel: Any, queues: tuple[str, ...]) -> list[Any]:
    """The messages waiting in the queues' lists and those delivered but not acknowledged, read
    in one transaction (one consistent picture of both)."""
    # Kombu keeps one list per priority step; the names come from the channel itself.
    lists = sorted(
        {channel._q_for_pri(queue, step) for queue in queues for step in channel.priority_steps}
    )
    with channel.client.pipeline(transaction=True) as pipe:
        for name in lists:
            pipe.lrange(name, 0, -1)
        pipe.hvals(channel.unacked_key)
        *waiting, unacked = pipe.execute()
    messages = [_json(item) for items in waiting for item in items]
    # An unacknowledged message is kept as [message, exchange, routing key].
    for item in unacked:
        entry = _json(item)
        messages.append(entry[0] if isinstance(entry, list) and entry else None)
    return messages


def _folder_messages(folder: str, queues: tuple[str, ...]) -> list[Any]:
    endings = tuple(f".{queue}.msg" for queue in queues)
    messages: list[Any] = []
    for name in os.listdir(folder):
        if not name.endswith(endings):
            continue
        try:
            with open(os.path.join(folder, name), "rb") as handle:
                messages.append(_json(handle.read()))
        except FileNotFoundError:
            # A worker took it meanwhile: it is that worker's now.
            continue
    return messages


def _json(data: str | bytes) -> Any:
    """The decoded JSON, or None for something that is not (it is no message of ours)."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def _task_and_id(message: Any) -> Held | None:
    """(task, first argument) of a Celery (protocol 2) message, None for anything else."""
    try:
        task = message["headers"]["task"]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return None
    if not isinstance(args, list) or not args or not isinstance(args[0], int):
        return None
    return task, args[0]
