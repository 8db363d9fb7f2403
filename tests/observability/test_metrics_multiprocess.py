"""Several web processes (`smiley web --workers N`): each counts its own requests into files of
the shared folder, and one scrape adds them all up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app.observability.metrics import (
    MULTIPROC_ENV,
    HttpMetrics,
    exposition,
    prepare_multiprocess_dir,
)
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# What one web process does: count `times` requests to /healthz (prometheus_client reads
# PROMETHEUS_MULTIPROC_DIR when it is first imported, as in a process uvicorn spawns).
ONE_PROCESS = """
import sys
from app.observability.metrics import HttpMetrics
metrics = HttpMetrics()
for _ in range(int(sys.argv[1])):
    metrics.observe("GET", "/healthz", 200, 0.01)
"""


def test_a_scrape_adds_up_every_process(
    tmp_path: Path, db: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prometheus"
    (folder / "stale.db").parent.mkdir()
    (folder / "stale.db").write_bytes(b"left by the last run")
    monkeypatch.setenv(MULTIPROC_ENV, "unset-by-prepare")
    prepare_multiprocess_dir(folder)
    assert os.environ[MULTIPROC_ENV] == str(folder)
    assert list(folder.iterdir()) == []
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    for times in (2, 3):
        subprocess.run(
            [sys.executable, "-c", ONE_PROCESS, str(times)], cwd=ROOT, env=env, check=True
        )
    text = exposition(HttpMetrics(), db, settings).decode()
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert found[("smiley_http_requests_total", labels)] == 5
    assert found[("smiley_http_request_duration_seconds_count", labels[:2])] == 5
    # The database gauges are there too.
    assert found[("smiley_workers_alive", ())] == 0
