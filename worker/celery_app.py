"""The Celery app: broker from settings, a `gpu` queue for training and generation, a `default`
queue for light jobs. Job state lives in the database; messages only carry ids."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Queue

from app.settings import Settings, get_settings
from worker import events

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


class SmileyCelery(Celery):
    """A Celery app that knows its Smiley settings, so the `sent` task event is recorded in
    the database of the settings that sent it (worker/events.py)."""

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.smiley_settings = settings

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        token = events.sending_settings.set(self.smiley_settings)
        try:
            return super().send_task(*args, **kwargs)
        finally:
            events.sending_settings.reset(token)


def make_celery(settings: Settings) -> Celery:
    app = SmileyCelery(
        settings,
        "smiley",
        broker=settings.broker_url,
        include=["worker.tasks", "worker.jobs.datasets"],
    )
    app.conf.update(
        task_queues=[Queue(DEFAULT_QUEUE), Queue(GPU_QUEUE)],
        task_default_queue=DEFAULT_QUEUE,
        task_routes={"smiley.jobs.*": {"queue": GPU_QUEUE}},
        # Results live in the database (runs, heartbeats), never in a result backend.
        task_ignore_result=True,
        # A task is acknowledged after it ran and a worker takes one message at a time, so a
        # long training job never sits prefetched behind another.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if settings.uses_embedded_broker:
        settings.ensure_data_dir()
        queue_dir = str(settings.broker_dir / "queue")
        app.conf.update(
            # Kombu's filesystem transport with atomic writes (worker/broker.py says why).
            broker_transport="worker.broker:Transport",
            broker_transport_options={
                "data_folder_in": queue_dir,
                "data_folder_out": queue_dir,
                "processed_folder": str(settings.broker_dir / "processed"),
                # Kombu's default is "control" in the working directory.
                "control_folder": str(settings.broker_dir / "control"),
                "store_processed": False,
                # Kombu polls the folder every second by default: up to a second before each
                # run starts, which a loop of 46 runs paid in minutes. A listing of a folder
                # of a few files 5 times a second costs the idle worker next to nothing.
                "polling_interval": 0.2,
            },
            # The filesystem transport has no fan-out exchange, which remote control needs.
            worker_enable_remote_control=False,
        )
    return app


@lru_cache
def get_celery_app() -> Celery:
    return make_celery(get_settings())


celery_app = get_celery_app()


_apps: dict[tuple[str, str], Celery] = {}


def celery_for(settings: Settings) -> Celery:
    """The Celery app for these settings, made once: the web app sends with the settings it was
    created with (tests give each their own data folder), not the process-wide ones."""
    key = (settings.broker_url, str(settings.data_dir))
    if key not in _apps:
        _apps[key] = make_celery(settings)
    return _apps[key]
