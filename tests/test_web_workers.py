"""`smiley web --workers 2` on a busy host: a web process that takes longer than uvicorn's 5 s
to answer its first health check is given time to start instead of being replaced for ever
(the port never answered, and nothing was logged); a web process that dies is replaced, with
a warning in the log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MigratedDatabases
from tests.faults.conftest import SECRET_KEY, free_port

pytestmark = pytest.mark.slow

# Each web process's interpreter is held up before it runs anything: a start as slow as the
# 10 s import seen at load 18, past uvicorn's own 5 s health-check timeout.
SLOW_START = """
import os, sys, time
if "--multiprocessing-fork" in sys.argv and os.environ.get("SLOW_START_SECONDS"):
    time.sleep(float(os.environ["SLOW_START_SECONDS"]))
"""


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def test_slow_starting_web_processes_come_up_and_a_dead_one_is_replaced_with_a_warning(
    tmp_path: Path, migrated_databases: MigratedDatabases
) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "sitecustomize.py").write_text(SLOW_START)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path / "hooks"), env.get("PYTHONPATH", "")]),
        SLOW_START_SECONDS="7",
        SMILEY_DATA_DIR=str(tmp_path / "data"),
        SMILEY_DATABASE_URL=migrated_databases.sqlite(tmp_path / "smiley.sqlite3"),
        SMILEY_SECRET_KEY=SECRET_KEY,
        SMILEY_WEB_WORKER_START_SECONDS="30",
    )
    port = free_port()
    log = tmp_path / "web.log"
    web = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "web", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )

    def wait_until(check: object, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if web.poll() is not None:
                pytest.fail(f"smiley web exited {web.returncode}:\n{log.read_text()[-4000:]}")
            if check():  # type: ignore[operator]
                return
            time.sleep(0.2)
        pytest.fail(f"timed out after {seconds}s waiting for {what}:\n{log.read_text()[-4000:]}")

    def answers() -> bool:
        try:
            # 503 is an answer too: no Celery worker runs beside this web app.
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return answer.status_code in (200, 503)

    def started() -> list[int]:
        return [
            int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", log.read_text())
        ]

    try:
        wait_until(answers, 45, "the web processes to answer")
        # Both must be serving before one is killed: the supervisor checks its processes one
        # after another, and a process still starting holds that check for up to its start
        # window (30 s here), which would delay the warning for the other.
        wait_until(
            lambda: log.read_text().count("Application startup complete.") == 2,
            45,
            "both web processes to start",
        )
        assert "died" not in log.read_text()
        first, second = started()
        # The parent's children: the two web processes and multiprocessing's resource tracker
        # (pids can wrap, so they are told apart by the log, not by their order).
        assert {first, second} < set(children(web.pid))
        assert len(children(web.pid)) == 3

        os.kill(first, signal.SIGKILL)
        warning = (
            f"web process [{first}] died or did not answer its health check in time "
            "(SMILEY_WEB_WORKER_START_SECONDS); starting a new one"
        )

        def warned() -> bool:
            lines = log.read_text().splitlines()
            return any(" WARNING uvicorn.error " in line and warning in line for line in lines)

        wait_until(warned, 15, "the warning for the dead process")
        wait_until(lambda: first not in children(web.pid), 15, "the dead process to go")
        wait_until(lambda: len(children(web.pid)) == 3, 45, "the replacement process")
        assert second in children(web.pid)
        assert answers()
    finally:
        web.terminate()
        try:
            web.wait(timeout=30)
        except subprocess.TimeoutExpired:
            web.kill()
            web.wait()
