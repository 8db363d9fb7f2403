"""Sending a run's id to the workers' `gpu` queue, always after the commit that made it."""

from __future__ import annotations

from app.settings import Settings

TRAIN_TASK = "smiley.jobs.train"


def enqueue_run(settings: Settings, run_id: int) -> None:
    # Imported here: the web app reaches the broker only when it sends something.
    from worker.celery_app import celery_for

    celery_for(settings).send_task(TRAIN_TASK, args=[run_id])
