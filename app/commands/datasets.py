"""`smiley import` and `smiley export`: datasets in and out, run in this process (the web app
runs the same services as background jobs).

Progress bars go to stderr, the report to stdout, so `smiley export list > list.txt` keeps
only the report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from app.commands import acting_user, fail, session
from app.datasets.dialogue import DialogueFilters
from app.models import Snapshot, SnapshotKind
from app.schemas.imports import ImportResult
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.services import guidelines, users
from app.services.imports import import_stream
from app.services.prompts import get_project_checked
from app.services.snapshots import (
    create_snapshot,
    export_judgements,
    get_snapshot,
    list_snapshots,
    preview_rows,
)
from app.settings import get_settings

export_cli = typer.Typer(
    help="Snapshots in TRL's formats, raw judgements and KTO rows.", no_args_is_help=True
)


def register(cli: typer.Typer) -> None:
    cli.command("import")(import_command)
    cli.add_typer(export_cli, name="export")


class OnError(StrEnum):
    skip = "skip"
    stop = "stop"


class Speaker(StrEnum):
    A = "A"
    B = "B"


class PreferenceSource(StrEnum):
    pairs = "pairs"
    consensus = "consensus"


class Margin(StrEnum):
    none = "none"
    score_gap = "score_gap"


class JudgementFormat(StrEnum):
    raw = "raw"
    kto = "kto"


class Split(StrEnum):
    train = "train"
    test = "test"


ProjectOpt = Annotated[int, typer.Option("--project", help="The project's id.")]
AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this researcher or admin (default: the oldest active admin)."
    ),
]
QueueOpt = Annotated[
    list[int] | None, typer.Option("--queue", help="Only labels of this queue id (repeatable).")
]
SinceOpt = Annotated[
    str | None,
    typer.Option(help="Only labels made at or after this date/time (ISO 8601; UTC if no zone)."),
]
UntilOpt = Annotated[
    str | None, typer.Option(help="Only labels made before this date/time (ISO 8601).")
]
VersionOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--guideline-version", help="Only labels made under this version number (repeatable)."
    ),
]
AgreementOpt = Annotated[
    float | None, typer.Option(help="Only tasks whose pairwise agreement is at least this (0-1).")
]
FlaggedOpt = Annotated[bool, typer.Option(help="Leave out judgements that flag a response.")]
GoldOpt = Annotated[bool, typer.Option(help="Leave out gold tasks.")]
LabelerOpt = Annotated[
    list[str] | None,
    typer.Option("--labeler", help="Only labels by this username (repeatable)."),
]


# --- import -----------------------------------------------------------------------------------


def import_command(
    file: Annotated[Path, typer.Argument(help="A .jsonl, .csv, .parquet or .txt file.")],
    project: ProjectOpt,
    format: Annotated[
        str | None, typer.Option(help="The row format (default: recognised from the first rows).")
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(help="stop: a bad row ends it and nothing is kept; skip: count and go on."),
    ] = OnError.stop,
    source: Annotated[
        str | None, typer.Option(help="The source recorded on prompts (default: file name).")
    ] = None,
    min_turns: Annotated[
        int, typer.Option(min=1, help="Dialogue text: fewest turns a dialogue must have.")
    ] = DialogueFilters.min_turns,
    max_turn_chars: Annotated[
        int, typer.Option(min=1, help="Dialogue text: longest turn kept, in characters.")
    ] = DialogueFilters.max_turn_chars,
    user_speaker: Annotated[
        Speaker, typer.Option(help="Dialogue text: which of [A] and [B] is the user.")
    ] = Speaker.A,
    acting: AsOpt = None,
) -> None:
    """Import a dataset file into a project (all of it in one transaction)."""
    if not file.is_file():
        raise fail(f"{file} is not a file")
    total = file.stat().st_size
    with session() as db, file.open("rb") as stream, ExitStack() as stack:
        get_project_checked(db, project)
        user = acting_user(db, acting)
        bar = LazyBar(stack, f"importing {file.name}", total)
        result = import_stream(
            db,
            project,
            stream,
            file.name,
            format=format,
            on_error=on_error.value,
            acting=user,
            source=source,
            dialogue_filters=DialogueFilters(
                min_turns=min_turns,
                max_turn_chars=max_turn_chars,
                user_speaker=user_speaker.value,
            ),
            # Told after every batch; the bar follows the bytes read so far.
            progress=lambda _: bar.advance_to(stream.tell()),
        )
    if result.stopped:
        assert result.stop_error is not None
        raise fail(
            f"stopped at line {result.stop_error.line}: {result.stop_error.reason}; "
            "nothing was imported"
        )
    typer.echo(import_report(result))


def import_report(result: ImportResult) -> str:
    lines = [
        f"imported {result.source} as {result.format}",
        f"rows read: {result.rows_read}",
        f"rows: {result.rows_imported} imported, {result.rows_warned} imported with a warning, "
        f"{result.rows_merged} merged as repeats, {result.skipped} skipped",
        f"records imported: {result.records_imported}",
        f"prompts: {result.prompts_created} new, {result.prompts_reused} already there",
        f"responses: {result.responses} ({result.responses_merged} merged as duplicates)",
        f"demonstrations: {result.demonstrations}",
        f"comparisons: {result.comparisons}",
        f"pairs: {result.pairs}",
    ]
    if result.warnings:
        lines.append(f"warned: {result.rows_warned}")
        lines += [f"  line {note.line}: {note.reason}" for note in result.warnings]
    lines.append(f"skipped: {result.skipped}")
    if result.skipped_deleted:
        lines.append(f"  {result.skipped_deleted} deleted by Open-Assistant moderators")
    lines += [f"  line {error.line}: {error.reason}" for error in result.errors]
    listed = result.skipped - result.skipped_deleted
    if listed > len(result.errors):
        lines.append(f"  ... and {listed - len(result.errors)} more")
    if result.filters is not None:
        dropped = ", ".join(f"{name} {count}" for name, count in result.filters.dropped.items())
        lines.append(
            f"dialogues: {result.filters.dialogues} read, {result.filters.kept} kept; "
            f"dropped: {dropped}"
        )
    return "\n".join(lines)


# --- export -----------------------------------------------------------------------------------


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option} {value!r} is not an ISO 8601 date or time (e.g. 2024-05-01)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filters(
    db: Session,
    project: int,
    *,
    queue: list[int] | None,
    since: str | None,
    until: str | None,
    guideline_version: list[int] | None,
    min_agreement: float | None,
    exclude_flagged: bool,
    exclude_gold: bool,
    labeler: list[str] | None,
    test_fraction: float,
    seed: int,
    include_ai_revisions: bool = False,
) -> SnapshotFilters:
    """The options as SnapshotFilters: version numbers and usernames become ids."""
    get_project_checked(db, project)
    return SnapshotFilters(
        queue_ids=queue or [],
        created_from=_moment(since, "--since"),
        created_to=_moment(until, "--until"),
        guideline_version_ids=[
            guidelines.get_version(db, project, number).id for number in guideline_version or []
        ],
        min_agreement=min_agreement,
        exclude_flagged=exclude_flagged,
        exclude_gold=exclude_gold,
        labeler_ids=[users.get_user_by_username(db, name).id for name in labeler or []],
        test_fraction=test_fraction,
        seed=seed,
        include_ai_revisions=include_ai_revisions,
    )


class LazyBar:
    """A progress bar on stderr, drawn from the first report on: input refused before any row
    is read then prints its error alone. Without a length (a snapshot's row count is known only
    at the end) it shows a moving marker and the count instead of a percentage."""

    def __init__(self, stack: ExitStack, label: str, length: int | None = None) -> None:
        self._stack, self._label, self._length = stack, label, length
        self._bar: Any = None
        self._done = 0

    def advance_to(self, done: int) -> None:
        if self._bar is None:
            # An empty generator has no length, which is how click is told it is unknown.
            items = None if self._length is not None else (_ for _ in ())
            self._bar = self._stack.enter_context(
                typer.progressbar(
                    items,
                    length=self._length,
                    label=self._label,
                    show_pos=self._length is None,
                    file=sys.stderr,
                )
            )
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done


@export_cli.command("snapshot")
def export_snapshot(
    project: ProjectOpt,
    kind: Annotated[SnapshotKind, typer.Option(help="sft, preference or prompts.")],
    name: Annotated[str, typer.Option(help="A name for the snapshot.")],
    source: Annotated[
        PreferenceSource | None,
        typer.Option(help="Preference only: every labeler's pairs (default) or the consensus."),
    ] = None,
    margin: Annotated[
        Margin | None,
        typer.Option(
            help="Preference only: score_gap adds a margin column (chosen score minus rejected, "
            "0.0 where unscored), which TRL's RewardTrainer puts into its loss; none (default) "
            "leaves it out."
        ),
    ] = None,
    queue: QueueOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    guideline_version: VersionOpt = None,
    min_agreement: AgreementOpt = None,
    exclude_flagged: FlaggedOpt = False,
    exclude_gold: GoldOpt = False,
    labeler: LabelerOpt = None,
    test_fraction: Annotated[
        float, typer.Option(help="Share of prompts that go to the test split.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    include_ai_revisions: Annotated[
        bool,
        typer.Option(
            "--include-ai-revisions",
            help='Add critique runs\' revisions: SFT rows, or "revision > original" pairs.',
        ),
    ] = False,
    acting: AsOpt = None,
) -> None:
    """Write an immutable snapshot (JSONL, Parquet and a `datasets` folder)."""
    settings = get_settings()
    with session() as db:
        data = SnapshotCreate(
            name=name,
            kind=kind,
            source=source.value if source is not None else None,
            margin=margin.value if margin is not None else None,
            filters=_filters(
                db,
                project,
                queue=queue,
                since=since,
                until=until,
                guideline_version=guideline_version,
                min_agreement=min_agreement,
                exclude_flagged=exclude_flagged,
                exclude_gold=exclude_gold,
                labeler=labeler,
                test_fraction=test_fraction,
                seed=seed,
                include_ai_revisions=include_ai_revisions,
            ),
        )
        user = acting_user(db, acting)
        with ExitStack() as stack:
            bar = LazyBar(stack, "rows written")
            snapshot = create_snapshot(db, settings, project, data, user, progress=bar.advance_to)
    typer.echo(
        f"snapshot {snapshot.id} ({snapshot.kind.value}): {snapshot.name}\n"
        f"folder: {settings.data_dir / snapshot.path}\n"
        f"rows: {snapshot.row_counts['train']} train, {snapshot.row_counts['test']} test\n"
        f"content hash: {snapshot.content_hash}"
    )


@export_cli.command("judgements")
def export_judgements_command(
    project: ProjectOpt,
    format: Annotated[
        JudgementFormat,
        typer.Option(help="raw: every judgement; kto: desirable/undesirable rows for TRL's KTO."),
    ],
    out: Annotated[Path, typer.Option(help="The file to write: .jsonl or .parquet.")],
    queue: QueueOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    guideline_version: VersionOpt = None,
    min_agreement: AgreementOpt = None,
    exclude_flagged: FlaggedOpt = False,
    exclude_gold: GoldOpt = False,
    labeler: LabelerOpt = None,
) -> None:
    """Every judgement (or KTO row) in one file, without a train/test split.

    The export is also kept under the data folder's exports/, named by its content."""
    suffix = out.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise fail(f"--out must end in .jsonl or .parquet, not {out.name!r}")
    if out.exists():
        raise fail(f"{out} already exists; choose another --out")
    if not out.parent.is_dir():
        raise fail(f"there is no folder {out.parent}")
    settings = get_settings()
    with session() as db:
        filters = _filters(
            db,
            project,
            queue=queue,
            since=since,
            until=until,
            guideline_version=guideline_version,
            min_agreement=min_agreement,
            exclude_flagged=exclude_flagged,
            exclude_gold=exclude_gold,
            labeler=labeler,
            # One file of every row: nothing goes to a test split.
            test_fraction=0.0,
            seed=0,
        )
        export = export_judgements(db, settings, project, format.value, filters)
    _copy_new(settings.data_dir / export.path / f"train{suffix}", out)
    typer.echo(
        f"wrote {export.row_counts['train']} {format.value} rows to {out}\n"
        f"export: {settings.data_dir / export.path}\n"
        f"content hash: {export.content_hash}"
    )


def _copy_new(source: Path, target: Path) -> None:
    """Copied aside and linked into place: a file that appeared meanwhile is not overwritten,
    and nobody sees a half-written one."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.link(temporary, target)
    except FileExistsError:
        raise fail(f"{target} already exists; choose another --out") from None
    finally:
        os.unlink(temporary)


@export_cli.command("list")
def export_list(project: ProjectOpt) -> None:
    """A project's snapshots, newest first."""
    with session() as db:
        get_project_checked(db, project)
        found = list_snapshots(db, project)
    if not found:
        typer.echo(f"project {project} has no snapshots")
        return
    typer.echo(LIST_HEADER)
    for snapshot in found:
        typer.echo(_snapshot_line(snapshot))


LIST_HEADER = (
    f"{'id':>5}  {'kind':<10} {'train':>8} {'test':>8}  {'hash':<12}  {'created (UTC)':<16}  name"
)


def _snapshot_line(snapshot: Snapshot) -> str:
    superseded = (
        f"  (superseded by {snapshot.superseded_by_id})" if snapshot.superseded_by_id else ""
    )
    return (
        f"{snapshot.id:>5}  {snapshot.kind.value:<10} {snapshot.row_counts['train']:>8} "
        f"{snapshot.row_counts['test']:>8}  {snapshot.content_hash[:12]}  "
        f"{snapshot.created_at:%Y-%m-%d %H:%M}  {snapshot.name}{superseded}"
    )


@export_cli.command("show")
def export_show(
    snapshot_id: Annotated[int, typer.Argument(metavar="ID", help="The snapshot's id.")],
    rows: Annotated[int, typer.Option(min=0, max=1000, help="Rows to preview.")] = 3,
    split: Annotated[Split, typer.Option(help="The split to preview.")] = Split.train,
) -> None:
    """A snapshot's manifest and its first rows, one JSON object a line."""
    settings = get_settings()
    with session() as db:
        snapshot = get_snapshot(db, snapshot_id)
        creator = users.get_user(db, snapshot.created_by_id) if snapshot.created_by_id else None
        preview = preview_rows(settings, snapshot, split.value, rows) if rows else []
    filters = {
        key: value
        for key, value in snapshot.filters.items()
        if value not in (None, False, []) or key in ("test_fraction", "seed")
    }
    lines = [
        f"snapshot {snapshot.id} ({snapshot.kind.value}): {snapshot.name}",
        f"project: {snapshot.project_id}",
        f"folder: {settings.data_dir / snapshot.path}",
        f"rows: {snapshot.row_counts['train']} train, {snapshot.row_counts['test']} test",
        f"content hash: {snapshot.content_hash}",
        f"created: {snapshot.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" by {creator.username}" if creator else ""),
        f"filters: {json.dumps(filters, sort_keys=True)}",
    ]
    if snapshot.superseded_by_id is not None:
        lines.append(f"superseded by: {snapshot.superseded_by_id}")
    if rows:
        lines.append(f"first {len(preview)} {split.value} rows:")
        lines += [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in preview]
    typer.echo("\n".join(lines))
