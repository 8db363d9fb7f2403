"""Dataset jobs: imports and snapshot exports of up to a million rows, run by a worker on the
Celery `default` queue so a page can show their progress (the CLI calls the import and
snapshot services in-process instead).

starting.py checks everything that can be checked at once (the project, the file's name, kind
and format, the snapshot filters), so a bad request is refused before anything is queued, then
commits the row and sends its id; running.py is what the worker calls; progress.py keeps a
running job's live counts outside the database (it says why); reading.py reads jobs back, and
a snapshot's files for download. Uploads and progress files live in the data folder, which web
and worker share anyway (snapshots live there too)."""

from app.services.dataset_jobs.progress import LiveProgress, read_live_progress
from app.services.dataset_jobs.reading import (
    MAX_LISTED,
    SNAPSHOT_FILES,
    get_dataset_job,
    job_out,
    list_dataset_jobs,
    snapshot_file,
)
from app.services.dataset_jobs.reaping import reap_stale_dataset_jobs
from app.services.dataset_jobs.running import run_dataset_job
from app.services.dataset_jobs.starting import (
    TASK_NAME,
    Enqueue,
    UploadTooLarge,
    send_to_worker,
    start_import_job,
    start_snapshot_job,
)

__all__ = [
    "MAX_LISTED",
    "SNAPSHOT_FILES",
    "TASK_NAME",
    "Enqueue",
    "LiveProgress",
    "UploadTooLarge",
    "get_dataset_job",
    "job_out",
    "list_dataset_jobs",
    "read_live_progress",
    "reap_stale_dataset_jobs",
    "run_dataset_job",
    "send_to_worker",
    "snapshot_file",
    "start_import_job",
    "start_snapshot_job",
]
