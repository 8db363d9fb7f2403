"""docker-compose.yml describes the scale topology, and compose itself accepts it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV = {"POSTGRES_PASSWORD": "compose-test", "SMILEY_SECRET_KEY": "k" * 40}


def test_topology() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker"}
    assert services["migrate"]["command"] == ["smiley", "db", "upgrade"]
    assert services["web"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["worker"]["build"]["args"] == {"EXTRAS": "train"}
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def require_compose() -> None:
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose not installed (Debian package docker-compose)")


def test_compose_accepts_the_file() -> None:
    require_compose()
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_compose_refuses_to_run_without_secrets() -> None:
    require_compose()
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD" in result.stderr
