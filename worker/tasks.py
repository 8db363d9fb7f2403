"""System tasks and the worker's lifecycle hooks. Training jobs live in worker/jobs/."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown

from app.db import get_engine, session_factory
from app.models import WorkerHeartbeat
from worker.celery_app import celery_app
from worker.heartbeat import Heartbeat

_heartbeat: Heartbeat | None = None


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _heartbeat
    queues = [queue.name for queue in sender.app.amqp.queues.consume_from.values()]
    _heartbeat = Heartbeat(sender.hostname, queues)
    _heartbeat.start()


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@celery_app.task(name="smiley.ping")
def ping(probe: str) -> None:
    """Records `probe` on this worker's heartbeat row: proof that web -> broker -> worker works."""
    hostname = ping.request.hostname
    with session_factory(get_engine())() as db:
        record = db.get(WorkerHeartbeat, hostname)
        if record is not None:
            record.last_probe = probe
            db.commit()


@celery_app.task(name="smiley.jobs.train")
def train(run_id: int) -> str:
    """Runs a training run by id (routed to the `gpu` queue). The run row carries its state;
    the return value is only for logs."""
    from worker.runner import execute_run

    return execute_run(run_id, train.request.hostname or "worker")
