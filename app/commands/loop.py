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
from typing import TYPE_CHECKING, Annotated

import typer

from app import migrate
from app.commands import fail
from app.db import get_engine, session_factory
from app.settings import get_settings

if TYPE_CHECKING:
    from app.simulation.report import LoopReport


def loop_command(
    rounds: Annotated[int | None, typer.Option(help="Rounds of the loop after SFT (1-5).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of prompts, labelers and runs.")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Run the loop once per seed (comma-separated, say 0,1,2) and report "
            "each and their mean."
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings from a TOML or JSON file (LoopConfig's names; options given here win).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    ppo: Annotated[bool | None, typer.Option(help="Train a PPO arm beside RLOO and DPO.")] = None,
    rloo_steps: Annotated[int | None, typer.Option(help="RLOO steps per round.")] = None,
    ppo_steps: Annotated[int | None, typer.Option(help="PPO steps per round.")] = None,
    dpo_steps: Annotated[int | None, typer.Option(help="DPO steps per round.")] = None,
    num_generations: Annotated[
        int | None, typer.Option(help="RLOO's completions per prompt.")
    ] = None,
    rloo_beta: Annotated[float | None, typer.Option(help="RLOO's KL coefficient.")] = None,
    ppo_kl_coef: Annotated[float | None, typer.Option(help="PPO's KL coefficient.")] = None,
    rloo_learning_rate: Annotated[float | None, typer.Option(help="RLOO's learning rate.")] = None,
    ppo_learning_rate: Annotated[float | None, typer.Option(help="PPO's learning rate.")] = None,
    dpo_learning_rate: Annotated[float | None, typer.Option(help="DPO's learning rate.")] = None,
    dpo_beta: Annotated[float | None, typer.Option(help="DPO's beta.")] = None,
    dpo_loss_type: Annotated[
        str | None, typer.Option(help="DPO's loss: sigmoid, hinge or ipo.")
    ] = None,
    dpo_sft_weight: Annotated[
        float | None, typer.Option(help="DPO's weight of the chosen answers' likelihood (RPO).")
    ] = None,
    dpo_pairs: Annotated[
        str | None,
        typer.Option(
            help="DPO's pairs: reward_model (the default: the start policy's answers ranked "
            "by the round's reward model), pairs (every labeler's) or consensus."
        ),
    ] = None,
    dpo_samples: Annotated[
        int | None,
        typer.Option(help="With reward_model pairs: answers per training prompt to rank."),
    ] = None,
    dpo_min_agreement: Annotated[
        float | None, typer.Option(help="With consensus pairs: the least task agreement.")
    ] = None,
    selection_topics: Annotated[
        int | None, typer.Option(help="Held-out topics the arms are chosen on.")
    ] = None,
    final_topics: Annotated[
        int | None, typer.Option(help="Held-out topics every reported figure is measured on.")
    ] = None,
    hidden_repeats: Annotated[
        int | None, typer.Option(help="Answers per final prompt the hidden preference judges.")
    ] = None,
    keep_rule: Annotated[
        str | None,
        typer.Option(
            help="Keep the best arm when its selection win rate is above 0.5 "
            "(win_rate) or its interval is (interval)."
        ),
    ] = None,
    ai_arm: Annotated[
        bool | None,
        typer.Option(
            help="Train an AI-feedback arm: RLOO on a judge's labels, the judge trained on a "
            "seed of people's labels."
        ),
    ] = None,
    ai_seed_prompts: Annotated[
        int | None,
        typer.Option(help="Training prompts people label (once each) for the AI arm's judge."),
    ] = None,
    worker: Annotated[
        bool, typer.Option(help="Start a worker (leave off when `smiley up` runs one).")
    ] = True,
) -> None:
    """Run the loop with simulated labelers and print each round's win rates (a few minutes on
    a CPU per seed; needs the `train` extra)."""
    import httpx
    import uvicorn
    from pydantic import ValidationError

    from app.main import create_app
    from app.simulation.loop import LoopConfig, LoopError, run_loop
    from app.simulation.report import summary
    from app.simulation.steps import config_with, load_config

    overrides = {
        "rounds": rounds, "seed": seed, "rloo_steps": rloo_steps, "dpo_steps": dpo_steps,
        "ppo_steps": 0 if ppo is False else ppo_steps, "num_generations": num_generations,
        "rloo_beta": rloo_beta, "ppo_kl_coef": ppo_kl_coef,
        "rloo_learning_rate": rloo_learning_rate, "ppo_learning_rate": ppo_learning_rate,
        "dpo_learning_rate": dpo_learning_rate, "dpo_beta": dpo_beta,
        "dpo_loss_type": dpo_loss_type, "dpo_sft_weight": dpo_sft_weight, "dpo_pairs": dpo_pairs,
        "dpo_min_agreement": dpo_min_agreement, "dpo_samples": dpo_samples,
        "selection_topics": selection_topics,
        "final_topics": final_topics, "hidden_repeats": hidden_repeats, "keep_rule": keep_rule,
        "ai_arm": ai_arm, "ai_seed_prompts": ai_seed_prompts,
    }  # fmt: skip
    try:
        base = (
            load_config(config_file, **overrides)
            if config_file is not None
            else config_with(LoopConfig(), **overrides)
        )
        seed_list = [base.seed] if seeds is None else _seeds(seeds)
        if seeds is not None and seed is not None:
            raise ValueError("give --seed or --seeds, not both")
        configs = [config_with(base, seed=value) for value in seed_list]
    except (ValueError, ValidationError) as error:
        raise fail(f"bad loop settings: {error}") from None

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
    reports = []
    try:
        _wait_until_up(server)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            for config in configs:
                reports.append(
                    run_loop(
                        settings, session_factory(engine), http, config,
                        log=lambda line: typer.echo(line),
                    )
                )  # fmt: skip
                _save(settings.data_dir, reports[-1])
    except LoopError as error:
        raise fail(str(error)) from None
    finally:
        server.should_exit = True
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    folder = settings.data_dir / "loop-demo"
    for report in reports:
        typer.echo(f"\nSeed {report.config.seed} (project {report.project_id}):\n")
        typer.echo(report.markdown())
    if len(reports) > 1:
        text = summary(reports)
        name = "seeds-" + "-".join(str(report.config.seed) for report in reports)
        (folder / f"{name}.md").write_text(text + "\n")
        typer.echo("\n" + text)
    typer.echo(
        f"\nSaved to {folder}/project-<id>.md and .json; browse the projects with `smiley up`."
    )


def _seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes whole numbers separated by commas; got {text!r}") from None
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ValueError(f"--seeds takes distinct whole numbers, 0 or more; got {text!r}")
    return values


def _save(data_dir: Path, report: LoopReport) -> None:
    folder = data_dir / "loop-demo"
    folder.mkdir(exist_ok=True)
    name = f"project-{report.project_id}"
    (folder / f"{name}.md").write_text(report.markdown() + "\n")
    (folder / f"{name}.json").write_text(json.dumps(report.to_json(), indent=1, default=str))


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
