"""Real processes for the fault tests: the web app under uvicorn, a private PostgreSQL cluster
and a private Redis, each on a free port, each killed or restarted by the test on purpose."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path

import httpx
import pytest

from tests.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "fault-test-secret-key-" + "x" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@dataclass
class WebServer:
    """The web app under uvicorn on a fixed port, killed and started again on that same port.

    Each server is a fork of tests/faults/serve.py, which imported the app once, so a restart
    takes well under a second even on a busy machine."""

    data_dir: Path
    database_url: str
    broker_url: str = "filesystem://"
    port: int = field(default_factory=free_port)
    pid: int | None = None
    starts: int = 0
    _forker: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"web-{self.port}.log"

    def _start_forker(self) -> subprocess.Popen[str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SMILEY_")}
        env.update(
            SMILEY_DATA_DIR=str(self.data_dir),
            SMILEY_DATABASE_URL=self.database_url,
            SMILEY_BROKER_URL=self.broker_url,
            SMILEY_SECRET_KEY=SECRET_KEY,
        )
        forker = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.serve", str(self.port), str(self.log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log.open("a"),
            text=True,
            cwd=REPO,
            env=env,
        )
        assert forker.stdout is not None
        ready = forker.stdout.readline()
        if ready.strip() != "ready":
            pytest.fail(f"the app did not import:\n{self.log.read_text()[-4000:]}")
        return forker

    def start(self) -> None:
        if self._forker is None:
            self._forker = self._start_forker()
        assert self._forker.stdin is not None and self._forker.stdout is not None
        self._forker.stdin.write("serve\n")
        self._forker.stdin.flush()
        self.pid = int(self._forker.stdout.readline())
        self.starts += 1
        wait_for(self._answers, 30, f"the web app on port {self.port} (log: {self.log})")

    def _alive(self) -> bool:
        assert self.pid is not None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _answers(self) -> bool:
        if not self._alive():
            pytest.fail(f"the web app exited:\n{self.log.read_text()[-4000:]}")
        try:
            httpx.get(f"{self.base_url}/healthz", timeout=2)
        except httpx.TransportError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL: no shutdown, no finishing of requests in flight."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        wait_for(lambda: not self._alive(), 10, f"web process {self.pid} to die")

    def stop(self) -> None:
        if self.pid is not None and self._alive():
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive():
                self.kill()
        if self._forker is not None:
            assert self._forker.stdin is not None
            self._forker.stdin.close()
            self._forker.wait(timeout=15)
            self._forker = None


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of the test's own, in a temp folder owned by the postgres user, so
    restarting it disturbs no other test. `directory` must exist and be reachable by postgres
    (a tempfile.mkdtemp under /tmp)."""

    bin_dir: Path
    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        # The folder is the postgres user's; pytest's own temp folders are root's alone.
        shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.directory / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-l",
            str(self.directory / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-m",
            mode,
            "-w",
            "stop",
        )

    def running(self) -> bool:
        return (self.directory / "data" / "postmaster.pid").exists()


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries, or a skip (a failure in CI) saying why."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        unavailable("a private PostgreSQL cluster needs root (to run initdb as postgres)")
    return Path(found[-1]).parent


@dataclass
class RedisServer:
    """A private redis-server that keeps nothing on disk."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def _answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(_answers, 20, f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
