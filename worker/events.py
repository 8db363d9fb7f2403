"""Records each Smiley task's lifecycle into `task_events` from Celery's signals: `sent` in the
process that publishes, the rest in the worker. Recording must never break or slow a task: rows
are written by one background thread per process, and its database errors are logged, not
raised."""

from __future__ import annotations

import logging
import os
import queue
import threading
from contextvars import ContextVar
from typing import Any

from celery.signals import (
    after_task_publish,
    task_failure,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_process_shutdown,
)

from app.settings import Settings, get_settings

log = logging.getLogger("smiley.task_events")

RUN_TASKS = frozenset({"smiley.jobs.train"})
DATASET_JOB_TASKS = frozenset({"smiley.datasets.run"})

# The settings of the Celery app that is publishing right now (set by SmileyCelery.send_task):
# the web app sends with the settings it was made with, not the process-wide ones.
sending_settings: ContextVar[Settings | None] = ContextVar("smiley_sending_settings", default=None)


class Recorder:
    """One daemon thread that writes queued events; the signal handlers only enqueue."""

    def __init__(self) -> None:
        # (settings, event to write), or (None, a threading.Event set once all before it are).
        self._queue: queue.Queue[tuple[Settings | None, Any]] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # A forked pool process has none of the parent's threads, and the parent's lock may
        # have been held at the fork: start afresh (queued events stay the parent's to write).
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue = queue.Queue(maxsize=10_000)
        self._thread = None
        self._lock = threading.Lock()

    def submit(self, settings: Settings, event: Any) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait((settings, event))
        except queue.Full:
            log.warning("task event dropped: the recorder is behind", extra={"event": event})

    def flush(self, timeout: float = 10.0) -> None:
        """Waits until every queued event is written (tests, and a worker shutting down)."""
        done = threading.Event()
        self._ensure_thread()
        try:
            self._queue.put((None, done), timeout=timeout)
        except queue.Full:
            return
        done.wait(timeout)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="smiley-task-events", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        from app.db import get_engine, session_factory
        from app.services.task_events import record_event

        while True:
            settings, event = self._queue.get()
            if settings is None:
                event.set()
                continue
            try:
                with session_factory(get_engine(settings))() as db:
                    record_event(db, event, keep=settings.task_events_keep)
            except Exception:
                log.warning("could not record a task event", exc_info=True)


recorder = Recorder()


def _related(task_name: str, args: Any) -> dict[str, int | None]:
    first = args[0] if isinstance(args, list | tuple) and args else None
    related_id = first if isinstance(first, int) and not isinstance(first, bool) else None
    return {
        "run_id": related_id if task_name in RUN_TASKS else None,
        "dataset_job_id": related_id if task_name in DATASET_JOB_TASKS else None,
    }


def _submit(
    settings: Settings,
    task_id: str | None,
    task_name: str | None,
    state: str,
    args: Any = None,
    **fields: Any,
) -> None:
    from app.services.task_events import NewTaskEvent

    if not task_id or not task_name or not task_name.startswith("smiley."):
        return
    if not settings.task_events_record:
        return
    try:
        event = NewTaskEvent(
            task_id=task_id, task_name=task_name, state=state, **_related(task_name, args), **fields
        )
        recorder.submit(settings, event)
    except Exception:
        log.warning("could not queue a task event", exc_info=True)


@after_task_publish.connect
def _sent(
    sender: str | None = None, headers: dict[str, Any] | None = None, body: Any = None, **_: Any
) -> None:
    headers = headers or {}
    args = body[0] if isinstance(body, list | tuple) and body else None
    _submit(
        sending_settings.get() or get_settings(),
        headers.get("id"),
        headers.get("task") or sender,
        "sent",
        args,
    )


def _hostname(task: Any) -> str | None:
    return getattr(getattr(task, "request", None), "hostname", None)


@task_prerun.connect
def _started(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    _submit(
        get_settings(),
        task_id,
        getattr(task, "name", None),
        "started",
        args,
        hostname=_hostname(task),
    )


@task_success.connect
def _succeeded(sender: Any = None, **_: Any) -> None:
    request = getattr(sender, "request", None)
    _submit(
        get_settings(),
        getattr(request, "id", None),
        getattr(sender, "name", None),
        "succeeded",
        getattr(request, "args", None),
        hostname=_hostname(sender),
    )


@task_failure.connect
def _failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    **_: Any,
) -> None:
    _submit(
        get_settings(),
        task_id,
        getattr(sender, "name", None),
        "failed",
        args,
        hostname=_hostname(sender),
        error_type=type(exception).__name__ if exception is not None else None,
        error_message=str(exception) if exception is not None else None,
    )


@task_retry.connect
def _retried(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    _submit(
        get_settings(),
        getattr(request, "id", None),
        getattr(sender, "name", None),
        "retried",
        getattr(request, "args", None),
        hostname=_hostname(sender),
        error_type=type(reason).__name__ if isinstance(reason, BaseException) else None,
        error_message=str(reason) if reason is not None else None,
    )


@task_revoked.connect
def _revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    _submit(
        get_settings(),
        getattr(request, "id", None),
        getattr(sender, "name", None),
        "revoked",
        getattr(request, "args", None),
    )


@worker_process_shutdown.connect
def _flush_on_exit(**_: Any) -> None:
    # A pool process that ends writes what it has queued first (bounded by the timeout).
    recorder.flush(timeout=5.0)
