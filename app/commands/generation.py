"""`smiley generate` and `smiley score`: a registered model samples answers that become
comparison tasks, and a reward model scores the responses labelers judged.

Both queue a run like `smiley train` does: every option becomes one field of the run's
hyperparameters (app/schemas/generation.py), and options left out take the schema's defaults,
so the stored run says exactly what was asked. The checks are the service's; a refusal ends the
command with its sentence and queues nothing.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from app.commands import acting_user, fail, session
from app.commands.training import AsOpt, find_model, follow_run
from app.models import Model, RunKind
from app.schemas.training import RunCreate
from app.services import runs
from app.settings import get_settings


class Split(enum.StrEnum):
    train = "train"
    test = "test"
    all = "all"


class Selection(enum.StrEnum):
    random = "random"
    reward_gap = "reward_gap"
    disagreement = "disagreement"


ProjectOpt = Annotated[int, typer.Option("--project", help="The project's id.")]
FollowOpt = Annotated[bool, typer.Option(help="Show a progress bar until the run ends.")]


def register(cli: typer.Typer) -> None:
    cli.command("generate")(generate_command)
    cli.command("score")(score_command)


def registered_model(db: Session, ref: str, option: str) -> Model:
    """A registered model by id or name: generation records the model that wrote each answer,
    so a folder or hub name (which `smiley train` accepts) is refused here."""
    model = find_model(db, ref)
    if model is None:
        raise fail(f"{option}: no registered model {ref!r} (see `smiley models list`)")
    return model


def given_only(values: dict[str, Any]) -> dict[str, Any]:
    """The options that were given; the rest take the schema's defaults."""
    return {key: value for key, value in values.items() if value is not None}


def generate_command(
    project: ProjectOpt,
    model: Annotated[
        str, typer.Option(help="The policy that answers: a registered model's id or name.")
    ],
    reward_model: Annotated[
        str | None,
        typer.Option(help="A reward model (id or name), for --best-of-n or reward_gap."),
    ] = None,
    queue: Annotated[
        int | None,
        typer.Option(help="A comparison queue that gets one task per prompt (and repeat)."),
    ] = None,
    prompts_from_queue: Annotated[
        int | None, typer.Option(help="Answer the prompts of this queue's tasks.")
    ] = None,
    snapshot: Annotated[
        int | None, typer.Option(help="Answer the prompts of this snapshot.")
    ] = None,
    split: Annotated[
        Split | None, typer.Option(help="With --snapshot: train, test (held out) or all.")
    ] = None,
    prompt_id: Annotated[
        list[int] | None, typer.Option("--prompt-id", help="Answer this prompt (repeatable).")
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Samples per prompt (N).")] = None,
    repeats: Annotated[
        int | None, typer.Option(help="Answer each prompt this many times, a task each.")
    ] = None,
    best_of_n: Annotated[
        bool, typer.Option("--best-of-n", help="Keep only the reward model's best sample.")
    ] = False,
    selection: Annotated[
        Selection | None,
        typer.Option(help="Which prompts --prompt-limit keeps: random, reward_gap, disagreement."),
    ] = None,
    prompt_limit: Annotated[int | None, typer.Option(help="Answer at most this many.")] = None,
    compare_model: Annotated[
        str | None,
        typer.Option(help="Another policy (id or name) that also answers, for side by side."),
    ] = None,
    include_demonstration: Annotated[
        bool,
        typer.Option(
            "--include-demonstration", help="Add the prompt's latest demonstration to each task."
        ),
    ] = False,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling threshold.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first sample.")] = None,
    follow: FollowOpt = False,
    as_: AsOpt = None,
) -> None:
    """Sample answers from a registered policy; with --queue they become comparison tasks."""
    settings = get_settings()
    with session() as db:
        user = acting_user(db, as_)
        policy = registered_model(db, model, "--model")
        reward = registered_model(db, reward_model, "--reward-model") if reward_model else None
        compared = registered_model(db, compare_model, "--compare-model") if compare_model else None
        hyperparameters = given_only(
            {
                "samples_per_prompt": samples,
                "repeats": repeats,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                # Flags: only an explicit yes is passed on, like any other option given.
                "best_of_n": best_of_n or None,
                "prompt_queue_id": prompts_from_queue,
                "prompt_ids": prompt_id or None,
                "split": split.value if split else None,
                "prompt_limit": prompt_limit,
                "selection": selection.value if selection else None,
                "target_queue_id": queue,
                "include_demonstration": include_demonstration or None,
                "compare_model_id": compared.id if compared else None,
            }
        )
        data = RunCreate(
            kind=RunKind.generate,
            base_model_id=policy.id,
            reward_model_id=reward.id if reward else None,
            snapshot_id=snapshot,
            hyperparameters=hyperparameters,
        )
        run_id = runs.create_run(db, settings, project, data, acting=user).id
    announce(run_id, RunKind.generate, follow)


def score_command(
    project: ProjectOpt,
    reward_model: Annotated[
        str, typer.Option(help="The reward model: a registered model's id or name.")
    ],
    all_: Annotated[
        bool,
        typer.Option("--all", help="Score every response, not only those labelers judged."),
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Score at most this many, newest first.")] = (
        None
    ),
    follow: FollowOpt = False,
    as_: AsOpt = None,
) -> None:
    """Score the project's judged responses with a reward model, for the audit against
    labelers."""
    settings = get_settings()
    with session() as db:
        user = acting_user(db, as_)
        reward = registered_model(db, reward_model, "--reward-model")
        hyperparameters = given_only({"responses": "all" if all_ else None, "limit": limit})
        data = RunCreate(
            kind=RunKind.score, reward_model_id=reward.id, hyperparameters=hyperparameters
        )
        run_id = runs.create_run(db, settings, project, data, acting=user).id
    announce(run_id, RunKind.score, follow)


def announce(run_id: int, kind: RunKind, follow: bool) -> None:
    typer.echo(f"run {run_id} queued ({kind.value}); follow it with `smiley runs follow {run_id}`")
    if follow:
        follow_run(run_id)
