"""`smiley demo loop`: the whole loop on this machine's CPU, with simulated labelers.

It starts what the loop needs around the configured data folder and database: the web app on a
free local port (the simulated labelers reach it over HTTP with their API tokens, like any
client) and, unless one is already running, a worker for the training and generation runs.
Then app/simulation/loop.py does the rest, and the table it produces is printed and saved
beside the data (`<data_dir>/loop-demo/`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from app import migrate
from app.commands import fail
from app.db import get_engine, session_factory
from app.settings import get_settings


def loop_command(
    rounds: Annotated[int, typer.Option(min=1, max=5, help="Rounds of the loop after SFT.")] = 2,
    seed: Annotated[int, typer.Option(min=0, help="Seed of prompts, labelers and runs.")] = 0,
    ppo: Annotated[bool, typer.Option(help="Train a PPO arm beside RLOO and DPO.")] = True,
    worker: Annotated[
        bool, typer.Option(help="Start a worker (leave off when `smiley up` runs one).")
    ] = True,
) -> None:
    """Run the loop with simulated labelers and print each round's win rates (a few minutes on
    a CPU; needs the `train` extra)."""
    import httpx
    import uvicorn

    from app.main import create_app
    from app.simulation.loop import LoopConfig, LoopError, run_loop

    settings = get_settings()
    settings.ensure_data_dir()
    migrate.upgrade()
    engine = get_engine()
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    process = _start_worker() if worker else None
    try:
        _wait_until_up(server)
        config = LoopConfig(rounds=rounds, seed=seed, ppo_steps=LoopConfig.ppo_steps if ppo else 0)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            report = run_loop(
                settings, session_factory(engine), http, config, log=lambda line: typer.echo(line)
            )
    except LoopError as error:
        raise fail(str(error)) from None
    finally:
        server.should_exit = True
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    table = report.markdown()
    folder = settings.data_dir / "loop-demo"
    folder.mkdir(exist_ok=True)
    name = f"project-{report.project_id}"
    (folder / f"{name}.md").write_text(table + "\n")
    (folder / f"{name}.json").write_text(json.dumps(report.to_json(), indent=1, default=str))
    typer.echo("\n" + table)
    typer.echo(
        f"\nSaved to {folder / name}.md and .json; browse project {report.project_id} "
        "with `smiley up`."
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(server: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not getattr(server, "started", False):
        if time.monotonic() > deadline:
            raise fail("the web app did not start")
        time.sleep(0.1)


def _start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--name", "loop-demo@%h",
         "--concurrency", "1", "--queues", "gpu,default"],
        cwd=Path.cwd(),
        start_new_session=True,
    )  # fmt: skip
