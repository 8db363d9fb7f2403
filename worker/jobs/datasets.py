"""Dataset jobs (imports and snapshot exports) on the `default` queue: the task takes the job's
id and hands it to app.services.dataset_jobs.run_dataset_job, which claims the row, runs the
job and records how it ended. No torch here: these are light jobs."""

from __future__ import annotations

from app.services.dataset_jobs import TASK_NAME, run_dataset_job
from worker.celery_app import DEFAULT_QUEUE, celery_app


# Not under `smiley.jobs.*`: that prefix is routed to the gpu queue.
@celery_app.task(name=TASK_NAME, queue=DEFAULT_QUEUE)
def run(job_id: int) -> None:
    run_dataset_job(job_id)
