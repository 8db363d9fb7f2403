"""Prometheus metrics: request counters kept by the web process, and gauges read from the
database at scrape time (so they are right however many web processes and workers there are).

With several web processes (`smiley web --workers N`) prometheus_client's multiprocess mode is
on: the CLI sets PROMETHEUS_MULTIPROC_DIR (prometheus_client's own variable) before the
processes start, each writes its counters to files there, and a scrape adds them up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Comparison, DatasetJob, Demonstration, Queue, Run
from app.models.base import utcnow
from app.services import health, queues
from app.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Request latencies of a web app: from a quick page to a slow upload.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiprocess_dir() -> str | None:
    # prometheus_client reads this variable itself when it is imported; Smiley only asks
    # whether it is set, to add up the processes' files at scrape time.
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: Path) -> None:
    """An empty folder for the processes' metric files: the last run's files would count
    its requests again."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


class HttpMetrics:
    """The web process's own counters, one set per app (tests make many apps)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forgets every count (the test suite hands one app to many tests)."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "smiley_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smiley_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class DatabaseCollector(Collector):
    """Gauges read with the scraping request's session, through the existing services."""

    def __init__(self, db: Session, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        yield from self._labels()
        yield from self._queues()
        yield from self._runs()
        yield from self._dataset_jobs()
        yield self._workers()

    def _labels(self) -> Iterable[Metric]:
        total = GaugeMetricFamily("smiley_labels", "Labels stored, by kind.", labels=["kind"])
        recent = GaugeMetricFamily(
            "smiley_labels_last_minute",
            "Labels submitted in the last 60 seconds, by kind.",
            labels=["kind"],
        )
        since = utcnow() - timedelta(minutes=1)
        for kind, model in (("comparison", Comparison), ("demonstration", Demonstration)):
            total.add_metric([kind], self.db.scalar(select(func.count()).select_from(model)) or 0)
            recent.add_metric(
                [kind],
                self.db.scalar(select(func.count()).where(model.created_at >= since)) or 0,
            )
        return [total, recent]

    def _queues(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "smiley_queue_assignments",
            "Labels a queue still needs (left), has leased out (in_progress) and has (done).",
            labels=["queue_id", "project_id", "state"],
        )
        rows = self.db.execute(select(Queue.id, Queue.project_id).order_by(Queue.id)).all()
        for queue_id, project_id in rows:
            progress = queues.queue_progress(self.db, queue_id)
            for state in ("left", "in_progress", "done"):
                family.add_metric([str(queue_id), str(project_id), state], getattr(progress, state))
        return [family]

    def _runs(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "smiley_runs",
            "Training and generation runs, by kind and status.",
            labels=["kind", "status"],
        )
        counted = self.db.execute(
            select(Run.kind, Run.status, func.count()).group_by(Run.kind, Run.status)
        ).all()
        for kind, status, count in sorted(counted):
            family.add_metric([str(kind), str(status)], count)
        return [family]

    def _dataset_jobs(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "smiley_dataset_jobs", "Dataset imports and snapshots, by status.", labels=["status"]
        )
        counted = self.db.execute(
            select(DatasetJob.status, func.count()).group_by(DatasetJob.status)
        ).all()
        for status, count in sorted(counted):
            family.add_metric([str(status)], count)
        return [family]

    def _workers(self) -> Metric:
        check = health.check_workers(self.db, self.settings)
        alive = sum(1 for worker in check.extra.get("workers", []) if worker["alive"])
        return GaugeMetricFamily(
            "smiley_workers_alive", "Workers whose heartbeat is recent.", value=alive
        )


def exposition(http: HttpMetrics, db: Session, settings: Settings) -> bytes:
    """The text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is not None:
        # Every web process's request counters, added up from their files.
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(http.registry))
    registry.register(DatabaseCollector(db, settings))
    return generate_latest(registry)


class _Forward(Collector):
    """Lets one scrape registry include the app's own (long-lived) registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()
