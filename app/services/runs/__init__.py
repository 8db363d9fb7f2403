"""Training runs: launched after their inputs are checked, claimed by one worker with a lease and
a heartbeat, reaped when the heartbeat stops, cancelled and resumed. The row is the truth; the
broker only carries its id."""

from app.services.runs.launching import create_run
from app.services.runs.lifecycle import (
    beat_run,
    claim_run,
    complete_run,
    fail_run,
    reap_stale_runs,
    record_downloads,
    record_metrics,
    request_cancel,
    resume_run,
)
from app.services.runs.queries import get_run, last_metric_step, list_runs, run_metrics

__all__ = [
    "beat_run",
    "claim_run",
    "complete_run",
    "create_run",
    "fail_run",
    "get_run",
    "last_metric_step",
    "list_runs",
    "reap_stale_runs",
    "record_downloads",
    "record_metrics",
    "request_cancel",
    "resume_run",
    "run_metrics",
]
