"""`smiley train`, `smiley runs`, `smiley models` and `smiley demo`: launching and following
training runs and the model registry from a terminal.

The commands talk to the database like the web app does; the run itself happens on a worker
(`smiley up` or `smiley worker`). `demo` builds its tiny model in a child process, because
building it needs torch and this process (app/) never imports it.
"""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import time
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.commands import acting_user, fail, session
from app.models import Model, ModelRole, Run, RunKind, RunStatus
from app.schemas.training import ModelRegister, RunCreate
from app.services import registry, runs
from app.settings import get_settings

runs_cli = typer.Typer(
    help="Training runs: list, show, follow, cancel, resume.", no_args_is_help=True
)
models_cli = typer.Typer(help="The model registry.", no_args_is_help=True)

FINISHED = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this researcher or admin (default: the oldest active admin)."
    ),
]


def register(cli: typer.Typer) -> None:
    from app.commands.loop import loop_command

    cli.command("train")(train_command)
    # `smiley demo` builds the tiny model; `smiley demo loop` runs the whole loop with it.
    demo_cli = typer.Typer(invoke_without_command=True)
    demo_cli.callback()(demo_command)
    demo_cli.command("loop")(loop_command)
    cli.add_typer(demo_cli, name="demo")
    cli.add_typer(runs_cli, name="runs")
    cli.add_typer(models_cli, name="models")


def parse_setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as JSON when it parses (numbers, true/false, lists), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise fail(f"--set takes KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def find_model(db: Session, ref: str) -> Model | None:
    """A registered model by id or name; None means `ref` is a folder or hub name."""
    if ref.isdigit():
        return registry.get_model(db, int(ref))
    return db.scalar(select(Model).where(Model.name == ref))


class TrainingKind(enum.StrEnum):
    """What `smiley train` launches; generate and score runs have commands of their own."""

    sft = "sft"
    reward = "reward"
    dpo = "dpo"
    ppo = "ppo"
    rloo = "rloo"
    grpo = "grpo"


def training_kind(value: str) -> TrainingKind:
    if value in (RunKind.generate, RunKind.score):
        raise typer.BadParameter(f"{value} runs are launched with `smiley {value}`")
    try:
        return TrainingKind(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not sft, reward, dpo, ppo, rloo or grpo") from None


def train_command(
    kind: Annotated[
        TrainingKind,
        typer.Argument(
            parser=training_kind, metavar="KIND", help="sft, reward, dpo, ppo, rloo or grpo."
        ),
    ],
    project: Annotated[int, typer.Option("--project", help="The project's id.")],
    base: Annotated[
        str,
        typer.Option(
            help="Base model: a registered model's id or name, or a folder inside the model "
            "folders (SMILEY_MODEL_ROOTS)."
        ),
    ],
    snapshot: Annotated[int, typer.Option(help="The snapshot to train on.")],
    reward_model: Annotated[
        str | None, typer.Option(help="PPO/RLOO/GRPO: the reward model's id or name.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A hyperparameter, KEY=VALUE (repeatable)."),
    ] = None,
    max_attempts: Annotated[int, typer.Option(help="Attempts, resumes included.")] = 3,
    follow: Annotated[bool, typer.Option(help="Show a progress bar until the run ends.")] = False,
    as_: AsOpt = None,
) -> None:
    """Launch a training run. Everything is checked before it is queued."""
    settings = get_settings()
    hyperparameters = dict(parse_setting(item) for item in set_ or [])
    with session() as db:
        user = acting_user(db, as_)
        base_model = find_model(db, base)
        reward = None
        if reward_model is not None:
            reward = find_model(db, reward_model)
            if reward is None:
                raise fail(f"no registered model {reward_model!r}")
        data = RunCreate(
            kind=RunKind(kind),
            base_model_id=base_model.id if base_model else None,
            base_model_ref=None if base_model else base,
            snapshot_id=snapshot,
            reward_model_id=reward.id if reward else None,
            hyperparameters=hyperparameters,
            max_attempts=max_attempts,
        )
        run = runs.create_run(db, settings, project, data, acting=user)
        run_id = run.id
    typer.echo(f"run {run_id} queued ({kind.value}); follow it with `smiley runs follow {run_id}`")
    if follow:
        follow_run(run_id)


def follow_run(run_id: int, *, poll: float = 1.0) -> None:
    """A progress bar fed from the run row until the run ends; exit code 1 unless it
    succeeded."""
    with session() as db:
        run = runs.get_run(db, run_id)
        status = run.status
    with typer.progressbar(length=1000, label=f"run {run_id}", file=sys.stderr) as bar:
        shown = 0
        while True:
            with session() as db:
                run = runs.get_run(db, run_id)
                status, progress = run.status, run.progress
                latest = dict(run.metrics.get("train", {}))
            done = int(progress * 1000)
            if done > shown:
                bar.update(done - shown)
                shown = done
            loss = latest.get("loss")
            bar.label = f"run {run_id} {status.value}" + (
                f" step {int(latest.get('step', 0))} loss {loss:.4f}" if loss is not None else ""
            )
            if status in FINISHED:
                break
            time.sleep(poll)
    with session() as db:
        show_run(runs.get_run(db, run_id))
    if status != RunStatus.succeeded:
        raise typer.Exit(code=1)


def show_run(run: Run) -> None:
    typer.echo(f"run {run.id}: {run.kind.value} {run.status.value} ({run.progress:.0%})")
    if run.worker_name:
        typer.echo(f"  worker: {run.worker_name}, attempt {run.attempts} of {run.max_attempts}")
    for part in ("train", "eval"):
        values = run.metrics.get(part)
        if values:
            shown = ", ".join(f"{key} {value:.4g}" for key, value in sorted(values.items()))
            typer.echo(f"  {part}: {shown}")
    if run.output_model_id:
        typer.echo(f"  model: {run.output_model_id} ({run.artifacts.get('model_dir')})")
    used = run.artifacts.get("settings")
    if used:
        typer.echo(f"  settings chosen: {json.dumps(used, sort_keys=True)}")
    if run.error:
        typer.echo(f"  error: {run.error}")


@runs_cli.command("list")
def runs_list(project: Annotated[int, typer.Option("--project", help="The project's id.")]) -> None:
    """The project's runs, newest first."""
    with session() as db:
        for run in runs.list_runs(db, project):
            typer.echo(
                f"{run.id:>5}  {run.kind.value:<7} {run.status.value:<10} {run.progress:>4.0%}  "
                f"model {run.output_model_id or '-'}"
            )


@runs_cli.command("show")
def runs_show(run_id: Annotated[int, typer.Argument()]) -> None:
    """Status, latest metrics, evaluation, settings and error of one run."""
    with session() as db:
        show_run(runs.get_run(db, run_id))


@runs_cli.command("follow")
def runs_follow(run_id: Annotated[int, typer.Argument()]) -> None:
    """A progress bar until the run ends."""
    follow_run(run_id)


@runs_cli.command("cancel")
def runs_cancel(run_id: Annotated[int, typer.Argument()], as_: AsOpt = None) -> None:
    """Stop a run at its next step (its last checkpoint is kept)."""
    with session() as db:
        run = runs.request_cancel(db, run_id, acting=acting_user(db, as_))
        state = "cancelled" if run.status == RunStatus.cancelled else "cancel requested"
    typer.echo(f"run {run_id}: {state}")


@runs_cli.command("resume")
def runs_resume(run_id: Annotated[int, typer.Argument()], as_: AsOpt = None) -> None:
    """Queue a failed or cancelled run again; it resumes from its last complete checkpoint."""
    with session() as db:
        runs.resume_run(db, get_settings(), run_id, acting=acting_user(db, as_))
    typer.echo(f"run {run_id} queued again")


@models_cli.command("list")
def models_list(
    project: Annotated[int | None, typer.Option("--project", help="Only this project's.")] = None,
) -> None:
    """Registered models as a lineage tree."""
    with session() as db:
        nodes = registry.lineage(db, project)

    def show(node: Any, depth: int) -> None:
        model = node.model
        where = model.path or model.hub_name
        origin = f" (run {model.run_id})" if model.run_id else ""
        typer.echo(
            f"{'  ' * depth}{model.id:>4}  {model.name}  {model.role.value}{origin}  {where}"
        )
        for child in node.children:
            show(child, depth + 1)

    for node in nodes:
        show(node, 0)


@models_cli.command("register")
def models_register(
    name: Annotated[str, typer.Argument()],
    path: Annotated[
        str,
        typer.Argument(
            help="A folder with config.json and safetensors, or a LoRA adapter folder naming "
            "its base, inside the model folders (SMILEY_MODEL_ROOTS; by default "
            "DATA_DIR/models, the import folder and DATA_DIR/runs)."
        ),
    ],
    role: Annotated[ModelRole, typer.Option(help="policy or reward.")] = ModelRole.policy,
    project: Annotated[int | None, typer.Option("--project", help="Only for this project.")] = None,
    as_: AsOpt = None,
) -> None:
    """Make a local model folder known to the registry. The folder must lie inside the model
    folders, as for the web app and the API: to add a model from elsewhere, copy it into
    DATA_DIR/models, or add its parent folder to SMILEY_MODEL_ROOTS."""
    with session() as db:
        model = registry.register_model(
            db,
            get_settings(),
            ModelRegister(name=name, path=path, role=role),
            acting=acting_user(db, as_),
            project_id=project,
        )
        typer.echo(f"model {model.id}: {model.name} ({model.role.value})")


def demo_command(
    context: typer.Context,
    name: Annotated[str, typer.Option(help="The registered model's name.")] = "tiny-demo",
    as_: AsOpt = None,
) -> None:
    """Build a tiny model with a locally built tokenizer (no download) and register it, so
    every job kind can run end to end on a CPU. `smiley demo loop` runs the whole loop."""
    if context.invoked_subcommand is not None:
        return
    settings = get_settings()
    settings.ensure_data_dir()
    folder = settings.data_dir / "models" / name
    with session() as db:
        user = acting_user(db, as_)
        if db.scalar(select(Model).where(Model.name == name)) is not None:
            raise fail(f"a model named {name!r} already exists")
    if not folder.exists():
        built = subprocess.run(
            [sys.executable, "-m", "worker.demo", str(folder)],
            capture_output=True,
            text=True,
        )
        if built.returncode != 0:
            raise fail(
                "building the tiny model failed (is the `train` extra installed?):\n"
                + built.stderr.strip()[-2000:]
            )
    with session() as db:
        model = registry.register_model(
            db,
            settings,
            ModelRegister(name=name, path=str(folder.relative_to(settings.data_dir))),
            acting=acting_user(db, as_ or user.username),
        )
        typer.echo(f"model {model.id}: {model.name} at {folder}")
