"""Each worker writes a heartbeat row every few seconds; /healthz reads it.

The embedded broker has no broadcast channel, so Celery's own ping cannot reach workers there.
The database can, on every topology."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.db import get_engine, session_factory
from app.models import WorkerHeartbeat
from app.models.base import utcnow
from app.services.dataset_jobs import reap_stale_dataset_jobs
from app.services.resending import resend_lost_messages
from app.services.runs import reap_stale_runs
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

# How often, at most, a worker asks the broker for lost messages (less often than it beats).
RESEND_CHECK_SECONDS = 60.0


class Heartbeat:
    def __init__(self, name: str, queues: list[str]) -> None:
        self.name = name
        self.queues = ",".join(sorted(queues))
        self.started_at: datetime = utcnow()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smiley-heartbeat", daemon=True)
        self._sessions = session_factory(get_engine())
        # When to next look for queued jobs whose broker message was lost (monotonic seconds).
        self._next_resend_check = 0.0

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._sessions() as db:
            db.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name))
            db.commit()

    def beat(self) -> None:
        with self._sessions() as db:
            record_beat(db, self.name, self.queues, self.started_at)
            # Every live worker also reaps runs whose own worker died: no extra process to run.
            settings = get_settings()
            stale_after = timedelta(seconds=settings.run_stale_seconds)
            for run_id in reap_stale_runs(db, stale_after=stale_after):
                log.warning("run %s: its worker stopped beating; marked worker lost", run_id)
            stale_after = timedelta(seconds=settings.dataset_job_stale_seconds)
            for job_id in reap_stale_dataset_jobs(db, settings, stale_after=stale_after):
                log.warning("dataset job %s: no progress for too long; marked worker lost", job_id)
            self._resend_lost(db, settings)

    def _resend_lost(self, db: Session, settings: Settings) -> None:
        """Sends again the ids of queued jobs whose broker message was lost. Not at every beat:
        while runs wait behind a busy GPU, looking reads the whole queue."""
        if time.monotonic() < self._next_resend_check:
            return
        every = min(RESEND_CHECK_SECONDS, settings.queued_resend_seconds)
        self._next_resend_check = time.monotonic() + every
        older_than = timedelta(seconds=settings.queued_resend_seconds)
        resent = resend_lost_messages(db, settings, older_than=older_than)
        for run_id in resent.runs:
            log.warning("run %s: queued, and the broker had lost its message; sent again", run_id)
        for job_id in resent.dataset_jobs:
            log.warning(
                "dataset job %s: queued, and the broker had lost its message; sent again", job_id
            )

    def _run(self) -> None:
        interval = get_settings().worker_heartbeat_seconds
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception:
                # A database blip must not kill the worker; the next beat retries and /healthz
                # shows the worker as stale meanwhile.
                log.exception("worker heartbeat failed")


def record_beat(db: Session, name: str, queues: str, started_at: datetime) -> None:
    record = db.get(WorkerHeartbeat, name)
    if record is None:
        record = WorkerHeartbeat(
            name=name,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=queues,
            started_at=started_at,
            last_seen_at=utcnow(),
        )
        db.add(record)
    else:
        record.pid = os.getpid()
        record.queues = queues
        record.started_at = started_at
        record.last_seen_at = utcnow()
    db.commit()
