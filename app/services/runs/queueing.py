"""Sending a job's id to the workers, always after the commit that made its row.

The broker is reached before that commit: `connected_sender` opens a connection (a short
timeout, no retries) and only then does the caller write and commit, then send on that open
connection. So a broker that is down is found while nothing is recorded yet, and the request
answers 503 at once instead of hanging through Celery's publish retries and then leaving a
queued run that no worker will ever hear of."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.errors import ServiceUnavailable
from app.settings import Settings

TRAIN_TASK = "smiley.jobs.train"
# Seconds to wait for the broker to accept a connection, and for any one reply from it.
CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0
BROKER_DOWN = (
    "the job queue (broker) is unreachable, so the job could not be queued; nothing was "
    "recorded, try again once the broker is back"
)

# Sends (task name, id, queue or None for the task's own route) on an open connection.
Send = Callable[[str, int, str | None], None]


class BrokerUnreachable(ServiceUnavailable):
    code = "broker_unavailable"


@contextmanager
def connected_sender(settings: Settings) -> Iterator[Send]:
    """Connects to the settings' broker and yields a function that sends one task on that
    connection; raises BrokerUnreachable (quickly) when it cannot connect or send."""
    # Imported here: the web app reaches the broker only when it sends something.
    from worker.celery_app import celery_for

    celery = celery_for(settings)
    connection = celery.connection_for_write(
        connect_timeout=CONNECT_TIMEOUT,
        transport_options={
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
            "max_retries": 0,
        },
    )
    failures = _failures(connection)
    try:
        try:
            # Redis's transport pings the server here, so a dead broker is found now.
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except failures as error:
            raise BrokerUnreachable(BROKER_DOWN) from error

        def send(task: str, job_id: int, queue: str | None) -> None:
            options: dict[str, Any] = {"queue": queue} if queue else {}
            try:
                celery.send_task(task, args=[job_id], connection=connection, retry=False, **options)
            except failures as error:
                raise BrokerUnreachable(BROKER_DOWN) from error

        yield send
    finally:
        connection.release()


def _failures(connection: Any) -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError

    return (OperationalError, OSError, *connection.connection_errors)


def enqueue_run(settings: Settings, run_id: int) -> None:
    """Sends an already committed run's id on a connection of its own (no work to undo)."""
    with connected_sender(settings) as send:
        send(TRAIN_TASK, run_id, None)
