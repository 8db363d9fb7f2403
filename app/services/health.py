"""What /healthz reports: the database, the broker and the workers."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import WorkerHeartbeat
from app.models.base import utcnow
from app.settings import Settings


@dataclass
class Check:
    ok: bool
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Health:
    database: Check
    broker: Check
    worker: Check

    @property
    def ok(self) -> bool:
        return self.database.ok and self.broker.ok and self.worker.ok

    @property
    def status(self) -> str:
        return "ok" if self.ok else "degraded"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "database": asdict(self.database),
            "broker": asdict(self.broker),
            "worker": asdict(self.worker),
        }


def check_database(engine: Engine) -> Check:
    try:
        # A raw DB-API round trip, outside any transaction: on SQLite a SQLAlchemy transaction
        # begins IMMEDIATE (app/db.py) and would queue behind writers just to say "alive".
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            cursor.close()
        finally:
            connection.close()
    except Exception as error:
        return Check(False, f"{type(error).__name__}: {error}".splitlines()[0])
    return Check(True, engine.dialect.name)


def check_broker(settings: Settings) -> Check:
    if settings.uses_embedded_broker:
        queue_dir = settings.broker_dir / "queue"
        if queue_dir.is_dir() and os.access(queue_dir, os.W_OK):
            return Check(True, f"embedded (filesystem) at {settings.broker_dir}")
        return Check(False, f"embedded broker folder {queue_dir} is missing or not writable")
    from worker.celery_app import make_celery

    try:
        # The broker of the settings given, not the process-wide app's (built from the
        # environment): otherwise a wrong URL here would be reported as reachable.
        with make_celery(settings).connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        return Check(False, f"{type(error).__name__}: {error}".splitlines()[0])
    return Check(True, _redacted(settings.broker_url))


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}://{rest}"


def check_workers(db: Session, settings: Settings) -> Check:
    fresh_since = utcnow() - timedelta(seconds=settings.worker_stale_seconds)
    try:
        workers = list(db.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.name)))
    except Exception as error:
        return Check(False, f"cannot read heartbeats: {type(error).__name__}")
    alive = [worker for worker in workers if worker.last_seen_at >= fresh_since]
    listing = [
        {
            "name": worker.name,
            "queues": worker.queues.split(","),
            "last_seen_at": worker.last_seen_at.isoformat(),
            "alive": worker in alive,
        }
        for worker in workers
    ]
    if not alive:
        return Check(False, "no worker has sent a heartbeat recently", {"workers": listing})
    return Check(True, f"{len(alive)} worker(s) alive", {"workers": listing})


def probe_worker(db: Session, settings: Settings, *, timeout: float = 10.0) -> Check:
    """Sends a ping through the broker and waits for a worker to record it in the database."""
    from worker.celery_app import get_celery_app

    probe = secrets.token_hex(8)
    try:
        get_celery_app().send_task("smiley.ping", args=[probe])
    except Exception as error:
        return Check(False, f"could not enqueue a probe: {type(error).__name__}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = db.scalar(select(WorkerHeartbeat.name).where(WorkerHeartbeat.last_probe == probe))
        # End the transaction before sleeping: under SQLite's WAL it would keep showing the old
        # snapshot, and a write session would hold the write lock the worker's ping needs.
        db.rollback()
        if name is not None:
            return Check(True, f"probe answered by {name}")
        time.sleep(0.2)
    return Check(False, f"no worker answered a probe within {timeout:g}s")


def health(engine: Engine, db: Session, settings: Settings, *, probe: bool = False) -> Health:
    database = check_database(engine)
    broker = check_broker(settings)
    worker = check_workers(db, settings) if database.ok else Check(False, "database is down")
    if probe and worker.ok and broker.ok:
        answered = probe_worker(db, settings)
        worker = Check(answered.ok, f"{worker.detail}; {answered.detail}", worker.extra)
    return Health(database=database, broker=broker, worker=worker)
