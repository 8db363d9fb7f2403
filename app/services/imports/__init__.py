"""Importing datasets into a project: records from any reader stored in one transaction (all
or nothing), in bounded batches; files read from an upload or from the admin's import folder.

A bad row either stops the import (nothing is kept, and the row's line and reason are
reported) or is skipped and counted, as the caller chose. A row the source itself deleted (an
Open-Assistant message its moderators removed) is skipped and counted apart in either mode.
Every row read is accounted for: rows_read = rows_imported + rows_merged + rows_warned +
skipped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.datasets.dialogue import DialogueFilters
from app.datasets.reading import KINDS, Dataset, kind_of
from app.datasets.records import Record, RowError
from app.errors import InvalidInput
from app.models import User
from app.schemas.imports import (
    DialogueFilterReport,
    ErrorMode,
    ImportProgress,
    ImportResult,
    ImportRowError,
)
from app.services.imports.checks import record_problem, record_warnings
from app.services.imports.storing import Counts, store_batch
from app.services.prompts import get_project_checked
from app.settings import Settings

BATCH_RECORDS = 1000
# Skipped rows listed in a result; more are counted, not listed.
LISTED_ERRORS = 100

__all__ = [
    "import_file",
    "import_records",
    "import_stream",
    "list_import_files",
    "resolve_import_path",
]


def import_records(
    db: Session,
    project_id: int,
    records: Iterable[Record | RowError],
    *,
    source: str,
    on_error: ErrorMode,
    acting: User | None,
    progress: Callable[[ImportProgress], None] | None = None,
    batch_size: int = BATCH_RECORDS,
) -> ImportResult:
    """Stores every record and commits once at the end; on a bad row in "stop" mode, or any
    exception, rolls back so nothing of the import is kept."""
    if on_error not in ("skip", "stop"):
        raise InvalidInput("on_error must be 'skip' or 'stop'", field="on_error")
    source = source.strip()
    if not source:
        raise InvalidInput("name the import's source", field="source")
    get_project_checked(db, project_id)
    acting_id = acting.id if acting is not None else None
    counts = Counts()
    rows_read = skipped = deleted = 0
    errors: list[ImportRowError] = []
    batch: list[Record] = []
    try:
        for item in records:
            rows_read += item.rows
            if isinstance(item, Record):
                problem = record_problem(item)
                if problem is None:
                    item = dataclasses.replace(item, warnings=record_warnings(item))
                    batch.append(item)
                    if len(batch) >= batch_size:
                        store_batch(db, project_id, batch, source, acting_id, counts)
                        batch = []
                        if progress is not None:
                            progress(
                                ImportProgress(
                                    rows_read=rows_read,
                                    records_imported=counts.records,
                                    skipped=skipped,
                                )
                            )
                    continue
                item = RowError(item.line, problem, rows=item.rows)
            if item.deleted:
                # Not the file's fault, and common (most oasst1 trees have some): counted
                # apart, not listed among the errors, never a reason to stop.
                skipped += item.rows
                deleted += item.rows
                continue
            error = ImportRowError(line=item.line, reason=item.reason)
            if on_error == "stop":
                db.rollback()
                return ImportResult(
                    source=source, rows_read=rows_read, stopped=True, stop_error=error
                )
            skipped += item.rows
            if len(errors) < LISTED_ERRORS:
                errors.append(error)
        if batch:
            store_batch(db, project_id, batch, source, acting_id, counts)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    if progress is not None:
        progress(
            ImportProgress(rows_read=rows_read, records_imported=counts.records, skipped=skipped)
        )
    return ImportResult(
        source=source,
        rows_read=rows_read,
        records_imported=counts.records,
        prompts_created=counts.prompts_created,
        prompts_reused=counts.prompts_reused,
        responses=counts.responses,
        demonstrations=counts.demonstrations,
        comparisons=counts.comparisons,
        pairs=counts.pairs,
        responses_merged=counts.responses_merged,
        rows_imported=counts.rows_imported,
        rows_merged=counts.rows_merged,
        rows_warned=counts.rows_warned,
        skipped=skipped,
        skipped_deleted=deleted,
        errors=errors,
        warnings=[ImportRowError(line=note.line, reason=note.reason) for note in counts.warnings],
    )


def import_stream(
    db: Session,
    project_id: int,
    stream: BinaryIO,
    name: str,
    *,
    format: str | None = None,
    on_error: ErrorMode,
    acting: User | None,
    source: str | None = None,
    dialogue_filters: DialogueFilters | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportResult:
    """An uploaded file (its kind from `name`'s ending), or an opened one."""
    get_project_checked(db, project_id)
    dataset = Dataset(stream, kind_of(name), format, dialogue_filters=dialogue_filters)
    result = import_records(
        db,
        project_id,
        dataset,
        source=source or PurePosixPath(name).name,
        on_error=on_error,
        acting=acting,
        progress=progress,
    )
    report = dataset.filter_report
    return result.model_copy(
        update={
            "format": dataset.format,
            "rows_read": dataset.rows_read,
            "filters": None
            if report is None
            else DialogueFilterReport(
                dialogues=report.dialogues, kept=report.kept, dropped=dict(report.dropped)
            ),
        }
    )


def import_file(
    db: Session,
    project_id: int,
    import_dir: Path,
    name: str,
    *,
    format: str | None = None,
    on_error: ErrorMode,
    acting: User | None,
    dialogue_filters: DialogueFilters | None = None,
    progress: Callable[[ImportProgress], None] | None = None,
) -> ImportResult:
    """A file in the admin's import folder, named relative to it."""
    path = resolve_import_path(import_dir, name)
    with path.open("rb") as stream:
        return import_stream(
            db,
            project_id,
            stream,
            path.name,
            format=format,
            on_error=on_error,
            acting=acting,
            dialogue_filters=dialogue_filters,
            progress=progress,
        )


def resolve_import_path(import_dir: Path, name: str) -> Path:
    """The file `name` names inside `import_dir`. Refused: absolute paths, `..`, anything
    (a symlink included) that leads outside the folder, and what is not a regular file."""
    if not name or not name.strip() or "\x00" in name:
        raise InvalidInput("name a file in the import folder", field="name")
    as_posix, as_windows = PurePosixPath(name), PureWindowsPath(name)
    if as_posix.is_absolute() or as_windows.is_absolute() or as_windows.drive:
        raise InvalidInput(
            f"{name!r} is an absolute path; name a file inside the import folder", field="name"
        )
    if ".." in as_posix.parts or ".." in as_windows.parts:
        raise InvalidInput(
            f"{name!r} goes up a folder ('..'); name a file inside the import folder", field="name"
        )
    try:
        base = import_dir.resolve(strict=True)
    except OSError:
        raise InvalidInput(f"the import folder {str(import_dir)!r} does not exist") from None
    if not base.is_dir():
        raise InvalidInput(f"the import folder {str(import_dir)!r} is not a folder")
    target = (base / as_posix).resolve()
    if not target.is_relative_to(base):
        raise InvalidInput(f"{name!r} leads outside the import folder (a symlink?)", field="name")
    if not target.exists():
        raise InvalidInput(f"there is no {name!r} in the import folder", field="name")
    if not target.is_file():
        raise InvalidInput(f"{name!r} is not a file", field="name")
    return target


def list_import_files(settings: Settings, limit: int) -> list[str] | None:
    """Dataset files in the import folder, relative to it and sorted (hidden ones left out);
    None when no folder is set. A huge folder is offered in part: the first `limit` found."""
    if settings.import_dir is None:
        return None
    if not settings.import_dir.is_dir():
        return []
    return sorted(islice(_dataset_files(settings.import_dir), limit))


def _dataset_files(folder: Path) -> Iterator[str]:
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        if not hidden and path.suffix.lower() in KINDS and path.is_file():
            yield relative.as_posix()
