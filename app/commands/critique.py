"""`smiley critique`: a project's principles, critique runs and their revisions, and the judge's
suggestions in a queue's workbench with how often labelers agreed with them.

A critique run is queued like `smiley generate` queues one: options given become fields of the
run's hyperparameters (app/schemas/critique.py), the rest take the schema's defaults. Every check
is the service's; a refusal ends the command with its sentence and changes nothing.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from app.commands import acting_user, session
from app.commands.generation import FollowOpt, ProjectOpt, announce, given_only, registered_model
from app.commands.training import AsOpt
from app.models import RunKind, SuggestionMode
from app.schemas.critique import PrincipleCreate, PrincipleOut
from app.schemas.training import RunCreate
from app.services import critique, principles, runs, suggestions
from app.settings import get_settings

critique_cli = typer.Typer(
    help="Principles, critique-and-revision runs, and the judge's suggestions.",
    no_args_is_help=True,
)


class Choice(enum.StrEnum):
    each = "each"
    random = "random"


def register(cli: typer.Typer) -> None:
    cli.add_typer(critique_cli, name="critique")


NameOpt = Annotated[str, typer.Option(help="A short name, e.g. harmless.")]
CritiqueOpt = Annotated[str, typer.Option("--critique", help="The critique request.")]
RevisionOpt = Annotated[str, typer.Option("--revision", help="The revision request.")]


def _show(found: PrincipleOut) -> None:
    typer.echo(f"{found.id}\t{found.name}\tversion {found.version}\t{found.revisions} revisions")


@critique_cli.command("principles")
def list_command(
    project: ProjectOpt,
    history: Annotated[bool, typer.Option("--history", help="Every version.")] = False,
) -> None:
    """List the project's principles: id, name, version, revisions made under it."""
    with session() as db:
        found = principles.principles_out(
            db, principles.list_principles(db, project, history=history)
        )
    if not found:
        typer.echo("no principles yet: add one with `smiley critique add`")
    for item in found:
        _show(item)


@critique_cli.command("add")
def add_command(
    project: ProjectOpt,
    name: NameOpt,
    critique_request: CritiqueOpt,
    revision_request: RevisionOpt,
    as_: AsOpt = None,
) -> None:
    """Add a principle."""
    with session() as db:
        data = PrincipleCreate(
            name=name, critique_request=critique_request, revision_request=revision_request
        )
        made = principles.create_principle(db, project, data, acting_user(db, as_))
        typer.echo(f"principle {made.id} added ({made.name}, version {made.version})")


@critique_cli.command("edit")
def edit_command(
    principle_id: Annotated[int, typer.Argument(help="The current version's id.")],
    name: NameOpt,
    critique_request: CritiqueOpt,
    revision_request: RevisionOpt,
    as_: AsOpt = None,
) -> None:
    """Save an edit as the principle's next version (the earlier one is kept)."""
    with session() as db:
        data = PrincipleCreate(
            name=name, critique_request=critique_request, revision_request=revision_request
        )
        made = principles.revise_principle(db, principle_id, data, acting_user(db, as_))
        typer.echo(f"principle {made.id} saved ({made.name}, version {made.version})")


@critique_cli.command("retire")
def retire_command(principle_id: Annotated[int, typer.Argument()], as_: AsOpt = None) -> None:
    """Take a principle out of the current list (its revisions keep naming it)."""
    with session() as db:
        acting_user(db, as_)
        found = principles.retire_principle(db, principle_id)
        typer.echo(f"principle {found.id} ({found.name}) retired")


@critique_cli.command("run")
def run_command(
    project: ProjectOpt,
    model: Annotated[str, typer.Option(help="The model that critiques: a registered id or name.")],
    queue: Annotated[
        int | None, typer.Option(help="Critique the responses of this comparison queue.")
    ] = None,
    snapshot: Annotated[
        int | None, typer.Option(help="Critique the responses of this preference snapshot.")
    ] = None,
    response_id: Annotated[
        list[int] | None, typer.Option("--response-id", help="Critique this response (repeatable).")
    ] = None,
    principle: Annotated[
        list[int] | None,
        typer.Option("--principle", help="Apply this principle (repeatable); default: all."),
    ] = None,
    choice: Annotated[
        Choice | None, typer.Option(help="each principle per response, or one at random.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Critique at most this many.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest critique/revision.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling threshold.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the first sample.")] = None,
    follow: FollowOpt = False,
    as_: AsOpt = None,
) -> None:
    """Queue a critique run: each response is critiqued and revised under the principles."""
    with session() as db:
        user = acting_user(db, as_)
        critic = registered_model(db, model, "--model")
        hyperparameters = given_only(
            {
                "queue_id": queue,
                "response_ids": response_id or None,
                "principle_ids": principle or None,
                "principle_choice": choice.value if choice else None,
                "limit": limit,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
            }
        )
        data = RunCreate(
            kind=RunKind.critique,
            base_model_id=critic.id,
            snapshot_id=snapshot,
            hyperparameters=hyperparameters,
        )
        run_id = runs.create_run(db, get_settings(), project, data, acting=user).id
    announce(run_id, RunKind.critique, follow)


@critique_cli.command("revisions")
def revisions_command(
    project: ProjectOpt,
    run: Annotated[int | None, typer.Option(help="Only this critique run's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """The newest revisions: original, critique and revision, with the principle version."""
    with session() as db:
        found = critique.list_revisions(db, project, run_id=run, limit=limit)
    if not found:
        typer.echo("no revisions yet")
    for item in found:
        typer.echo(
            f"response {item.response_id} revises {item.original_response_id} "
            f"(run {item.run_id}, {item.principle_name} v{item.principle_version})\n"
            f"  critique: {item.critique}\n  revision: {item.revision}"
        )


@critique_cli.command("suggestions")
def suggestions_command(
    queue: Annotated[int, typer.Argument(help="A comparison queue's id.")],
    mode: Annotated[
        SuggestionMode | None,
        typer.Option(help="Set when the workbench shows the judge's ranking: off, after, before."),
    ] = None,
    as_: AsOpt = None,
) -> None:
    """How often labelers agreed with the judge's ranking, per mode; --mode sets the mode."""
    with session() as db:
        if mode is not None:
            acting_user(db, as_)
            suggestions.set_suggestion_mode(db, queue, mode)
        found = suggestions.queue_agreement(db, queue)
    typer.echo(f"queue {found.queue_id}: the judge's ranking is shown {found.mode.value}")
    for row in found.by_mode:
        rate = "—" if row.rate is None else f"{row.rate:.3f}"
        typer.echo(
            f"{row.mode}\t{row.comparisons} labels\t{row.agreed}/{row.pairs} pairs agreed\t{rate}"
        )
