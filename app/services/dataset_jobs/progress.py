"""A running job's live progress, kept in a small JSON file, `<data_dir>/jobs/<id>.json`,
replaced atomically, and not in the job's row: an import is one transaction (all or nothing),
and on SQLite that transaction holds the database's write lock until it ends, so no other
connection could write progress to the row while it runs. The row gets the final counts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from app.settings import Settings

JOBS_FOLDER = "jobs"
# The progress file is rewritten at most this often (seconds).
PROGRESS_INTERVAL = 0.25


def progress_path(settings: Settings, job_id: int) -> Path:
    return settings.data_dir / JOBS_FOLDER / f"{job_id}.json"


class LiveProgress:
    """Writes a running job's counts to its progress file, at most every PROGRESS_INTERVAL
    seconds; written aside and renamed into place, so a reader never sees half a file."""

    interval = PROGRESS_INTERVAL

    def __init__(self, settings: Settings, job_id: int) -> None:
        self.settings, self.job_id = settings, job_id
        self.path = progress_path(settings, job_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last = 0.0

    def update(self, rows_done: int, bytes_done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        aside.write_text(json.dumps({"rows_done": rows_done, "bytes_done": bytes_done}))
        os.replace(aside, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_live_progress(settings: Settings, job_id: int) -> tuple[int, int] | None:
    """(rows_done, bytes_done) of a running job, or None when it has written none yet."""
    try:
        found = json.loads(progress_path(settings, job_id).read_text())
        return int(found["rows_done"]), int(found["bytes_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
