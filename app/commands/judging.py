"""`smiley judge`: a model labels comparison tasks (AI feedback), each judge is read against
the people, its most confident disagreements go back for a human label, and the generative
judge's prompt template is kept in versions.

`smiley judge run` queues a run like `smiley generate` does: the options given become the
run's hyperparameters (app/schemas/judging.py) and the rest take the schema's defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.commands import acting_user, fail, session
from app.commands.generation import FollowOpt, ProjectOpt, announce, given_only, registered_model
from app.commands.training import AsOpt
from app.models import RunKind
from app.schemas.judging import JudgeFigures, JudgeTemplateCreate
from app.schemas.training import RunCreate
from app.services import runs
from app.services.judging import agreement, sending, templates
from app.settings import get_settings

judge_cli = typer.Typer(
    help="AI judges: label tasks with a model, read it against people.", no_args_is_help=True
)
templates_cli = typer.Typer(
    help="The generative judge's prompt template, in versions.", no_args_is_help=True
)
judge_cli.add_typer(templates_cli, name="templates")


def register(cli: typer.Typer) -> None:
    cli.add_typer(judge_cli, name="judge")


@judge_cli.command("run")
def run_command(
    project: ProjectOpt,
    model: Annotated[
        str,
        typer.Option(
            help="The judge: a registered reward model (scores responses) or policy (asked "
            "with the judge template), by id or name."
        ),
    ],
    queue: Annotated[int | None, typer.Option(help="Judge this comparison queue's tasks.")] = None,
    snapshot: Annotated[
        int | None, typer.Option(help="Judge the tasks of this preference snapshot.")
    ] = None,
    template_version: Annotated[
        int | None, typer.Option(help="Generative judges: the template version (latest).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Judge at most this many tasks.")] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Generative judges: the longest reply.")
    ] = None,
    follow: FollowOpt = False,
    as_: AsOpt = None,
) -> None:
    """Queue a judge run: its labels are stored as AI labels (source "ai")."""
    settings = get_settings()
    with session() as db:
        user = acting_user(db, as_)
        judge = registered_model(db, model, "--model")
        data = RunCreate(
            kind=RunKind.judge,
            base_model_id=judge.id,
            snapshot_id=snapshot,
            hyperparameters=given_only(
                {
                    "queue_id": queue,
                    "template_version": template_version,
                    "task_limit": limit,
                    "max_new_tokens": max_new_tokens,
                }
            ),
        )
        run_id = runs.create_run(db, settings, project, data, acting=user).id
    announce(run_id, RunKind.judge, follow)


def _figures(figures: JudgeFigures) -> str:
    if figures.agreement is None:
        return "no pair to compare"
    return (
        f"{figures.agreement:.1%} [{figures.ci_low:.1%}, {figures.ci_high:.1%}] "
        f"({figures.agreeing}/{figures.pairs} pairs, {figures.tasks} tasks)"
    )


@judge_cli.command("agreement")
def agreement_command(
    project: ProjectOpt,
    queue: Annotated[int | None, typer.Option(help="Only this queue's tasks.")] = None,
    limit: Annotated[int, typer.Option(help="Disagreements shown per judge.")] = 5,
    as_: AsOpt = None,
) -> None:
    """Each judge against the labelers' consensus: overall, per category and per queue."""
    with session() as db:
        acting_user(db, as_)
        report = agreement.judge_report(db, project, queue_id=queue, limit=limit)
    if not report.judges:
        typer.echo("no judge has labelled this project's tasks yet: run `smiley judge run`")
        return
    for judge in report.judges:
        name = judge.model_name + (
            f" (template v{judge.template_version})" if judge.template_version else ""
        )
        typer.echo(f"{name}, {judge.mode}, {judge.labels} tasks labelled")
        typer.echo(f"  overall: {_figures(judge.overall)}")
        for row in judge.categories:
            typer.echo(f"  {row.category.value}: {_figures(row)}")
        for row in judge.queues:
            typer.echo(f"  queue {row.queue_name}: {_figures(row)}")
        for found in judge.disagreements:
            typer.echo(
                f"  disagrees on task {found.task_id}: people put response "
                f"{found.human_winner_response_id} over {found.human_loser_response_id}; "
                f"the judge the other way by {found.margin:g} ({found.margin_kind})"
            )


@judge_cli.command("send-back")
def send_back_command(
    project: ProjectOpt,
    task_ids: Annotated[list[int], typer.Argument(help="The tasks that need another look.")],
    as_: AsOpt = None,
) -> None:
    """Ask for one more human label on each task (its overlap grows by one)."""
    with session() as db:
        acting_user(db, as_)
        sent = sending.send_back_tasks(db, project, task_ids)
    typer.echo(f"{len(sent)} tasks wait for one more human label: {', '.join(map(str, sent))}")


@templates_cli.command("list")
def templates_list(project: ProjectOpt, as_: AsOpt = None) -> None:
    """The template versions, newest first."""
    with session() as db:
        acting_user(db, as_)
        found = templates.list_templates(db, project)
        if not found:
            typer.echo("no template yet: the first generative judge run saves the built-in one")
        for template in found:
            typer.echo(f"v{template.version}  {template.note or '—'}")


@templates_cli.command("save")
def templates_save(
    project: ProjectOpt,
    file: Annotated[Path, typer.Argument(help="A text file holding the template.")],
    note: Annotated[str, typer.Option(help="What changed.")] = "",
    as_: AsOpt = None,
) -> None:
    """Save a new template version from a file (placeholders: {guideline}, {conversation},
    {responses}, {letters})."""
    if not file.is_file():
        raise fail(f"{file} is not a file")
    body = file.read_text(encoding="utf-8")
    with session() as db:
        user = acting_user(db, as_)
        template = templates.save_template(
            db, project, JudgeTemplateCreate(body=body, note=note), user
        )
        typer.echo(f"saved judge template version {template.version}")


@templates_cli.command("show")
def templates_show(
    project: ProjectOpt,
    version: Annotated[int | None, typer.Option(help="The version (latest).")] = None,
    as_: AsOpt = None,
) -> None:
    """Print a template version (the built-in template when the project has none)."""
    with session() as db:
        acting_user(db, as_)
        if version is not None:
            typer.echo(templates.get_template(db, project, version).body)
            return
        latest = templates.latest_template(db, project)
        typer.echo(latest.body if latest else templates.DEFAULT_TEMPLATE)
