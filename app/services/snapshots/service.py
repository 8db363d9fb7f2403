"""Creating, superseding, listing and reading snapshots; raw and KTO exports.

A snapshot is written whole into a hidden folder beside the others, and renamed into
`<data_dir>/snapshots/<id>-<slug>/` only once every file is complete and read-only, in the
same transaction that stores its row: a failure anywhere leaves neither folder nor row.
There is no update: a changed selection is a new snapshot that supersedes the old one.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, DiskFull, InvalidInput, NotFound
from app.models import Comparison, LabelSource, Prompt, Snapshot, SnapshotKind, User
from app.schemas.snapshots import ExportOut, SnapshotCreate, SnapshotFilters
from app.services.snapshots import formats
from app.services.snapshots.filters import active_filters, check_filters
from app.services.snapshots.judgements import kto_chunks, raw_chunks
from app.services.snapshots.pairs import pair_chunks
from app.services.snapshots.preference import consensus_chunks
from app.services.snapshots.rows import prompt_chunks, sft_chunks
from app.services.snapshots.sources import resolve_sources, sources_in_words
from app.services.snapshots.writers import (
    SPLITS,
    SnapshotWriter,
    content_hash,
    finish_datasets_folder,
    remove,
    seal,
    write_manifest,
)
from app.settings import Settings

Rows = Callable[[Session, int, SnapshotFilters], Iterator[formats.Chunk]]
SELECTIONS: dict[str, tuple[pa.Schema, Rows]] = {
    "sft": (formats.SFT, sft_chunks),
    "prompts": (formats.PROMPTS, prompt_chunks),
    "pairs": (formats.preference_schema(margin=False, consensus=False), pair_chunks),
    "consensus": (formats.preference_schema(margin=False, consensus=True), consensus_chunks),
    "pairs+margin": (
        formats.preference_schema(margin=True, consensus=False),
        functools.partial(pair_chunks, margin=True),
    ),
    "consensus+margin": (
        formats.preference_schema(margin=True, consensus=True),
        functools.partial(consensus_chunks, margin=True),
    ),
    "raw": (formats.RAW, raw_chunks),
    "kto": (formats.KTO, kto_chunks),
}
MAX_PREVIEW = 1000
# Told the rows written so far, after every chunk (a background job shows it as progress).
Progress = Callable[[int], None]


def _is_disk_full(error: BaseException) -> bool:
    if not isinstance(error, OSError):
        return False
    # pyarrow's writers raise an OSError without an errno, naming the cause in the message.
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(error)


@contextmanager
def _disk_full_explained(what: str) -> Iterator[None]:
    """A full disk as a sentence instead of an OSError traceback; callers remove what they
    half-wrote before this reaches the user (the `finally`/`except` blocks inside)."""
    try:
        yield
    except OSError as error:
        if not _is_disk_full(error):
            raise
        raise DiskFull(
            f"the disk holding the data folder is full (no space left on device) while writing "
            f"{what}; nothing was kept: free some space and try again"
        ) from error


def _selection(data: SnapshotCreate) -> str:
    if data.kind != SnapshotKind.preference:
        return data.kind.value
    return (data.source or "pairs") + ("+margin" if data.margin == "score_gap" else "")


# What each selection's rows are made of, for the reason an empty snapshot is refused.
MADE_OF = {
    "sft": "demonstrations",
    "prompts": "prompts",
    "pairs": "compared pairs (labelers' or imported)",
    "consensus": "labeler comparisons on tasks",
}


def empty_reason(db: Session, project_id: int, source: str, filters: SnapshotFilters) -> str:
    """Why a snapshot would hold no rows: an empty training set is refused, never written."""
    reason = f"the snapshot would have no rows: project {project_id} has no {MADE_OF[source]}"
    active = sorted(active_filters(filters))
    if active:
        reason += f" that pass its filters ({', '.join(active)})"
    if source == "consensus":
        imported = db.scalar(
            select(func.count())
            .select_from(Comparison)
            .join(Prompt, Prompt.id == Comparison.prompt_id)
            .where(Prompt.project_id == project_id, Comparison.source == LabelSource.imported)
        )
        if imported:
            reason += (
                f". Consensus is taken over the labelers of each task; the project's "
                f"{imported} imported comparisons belong to no task and are one judge each, "
                'so they are in source "pairs" snapshots (and raw and KTO exports), not here'
            )
    return reason + "; nothing was written"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-") or "snapshot"


def _write_partial(
    db: Session,
    settings: Settings,
    project_id: int,
    selection: str,
    filters: SnapshotFilters,
    progress: Progress | None = None,
) -> tuple[Path, dict[str, int], str]:
    """(hidden folder holding every file but the manifest, row counts, content hash)."""
    schema, rows = SELECTIONS[selection]
    root = settings.data_dir / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".partial-{secrets.token_hex(8)}"
    partial.mkdir()
    try:
        with SnapshotWriter(partial, schema) as writer:
            writer.write_all(rows(db, project_id, filters), progress)
        digest = content_hash(partial)
        finish_datasets_folder(partial, digest, f"Smiley {selection} rows of project {project_id}")
    except BaseException:
        remove(partial)
        raise
    return partial, writer.row_counts, digest


def _create(
    db: Session,
    settings: Settings,
    project_id: int,
    data: SnapshotCreate,
    acting: User,
    supersedes: Snapshot | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    selection = _selection(data)
    source = selection.removesuffix("+margin")
    check_filters(db, project_id, data.filters, source)
    filters = resolve_sources(db, project_id, data.filters)
    stored_filters: dict[str, Any] = filters.model_dump(mode="json")
    stored_filters["sources_in_words"] = sources_in_words(db, filters)
    if data.kind == SnapshotKind.preference:
        stored_filters["source"] = source
        stored_filters["margin"] = data.margin
    written, counts, digest = _write_partial(db, settings, project_id, selection, filters, progress)
    if not sum(counts.values()):
        remove(written)
        raise InvalidInput(empty_reason(db, project_id, source, filters))
    final: Path | None = None
    try:
        snapshot = Snapshot(
            project_id=project_id,
            name=data.name,
            kind=data.kind,
            filters=stored_filters,
            content_hash=digest,
            row_counts=counts,
            path="",
            created_by_id=acting.id,
        )
        db.add(snapshot)
        db.flush()
        snapshot.path = f"snapshots/{snapshot.id}-{_slug(data.name)}"
        if supersedes is not None:
            supersedes.superseded_by_id = snapshot.id
        write_manifest(written, _manifest(snapshot, acting, supersedes))
        seal(written)
        target = settings.data_dir / snapshot.path
        if target.exists():
            raise Conflict(f"{snapshot.path} already exists in the data folder; move it away")
        os.rename(written, target)
        final = target
        db.commit()
    except BaseException:
        db.rollback()
        remove(written)
        if final is not None:
            remove(final)
        raise
    return snapshot


def _manifest(snapshot: Snapshot, acting: User, supersedes: Snapshot | None) -> dict[str, Any]:
    return {
        "id": snapshot.id,
        "name": snapshot.name,
        "project_id": snapshot.project_id,
        "kind": snapshot.kind.value,
        "filters": snapshot.filters,
        "row_counts": snapshot.row_counts,
        "content_hash": snapshot.content_hash,
        "created_by_id": acting.id,
        "created_by": acting.username,
        "created_at": snapshot.created_at.isoformat(),
        "supersedes_id": supersedes.id if supersedes else None,
        "files": {
            "jsonl": [f"{split}.jsonl" for split in SPLITS],
            "parquet": [f"{split}.parquet" for split in SPLITS],
            "datasets": "datasets",
        },
    }


def create_snapshot(
    db: Session,
    settings: Settings,
    project_id: int,
    data: SnapshotCreate,
    acting: User,
    *,
    progress: Progress | None = None,
) -> Snapshot:
    """Select, split and write the rows, then store the snapshot (see the module docstring)."""
    with _disk_full_explained("the snapshot"):
        return _create(db, settings, project_id, data, acting, progress=progress)


def supersede_snapshot(
    db: Session,
    settings: Settings,
    snapshot_id: int,
    data: SnapshotCreate,
    acting: User,
    *,
    progress: Progress | None = None,
) -> Snapshot:
    """A new snapshot of the same project and kind that replaces `snapshot_id`."""
    old = get_snapshot(db, snapshot_id)
    if old.superseded_by_id is not None:
        raise Conflict(f"snapshot {old.id} is already superseded by {old.superseded_by_id}")
    if data.kind != old.kind:
        raise InvalidInput(
            f"a {old.kind.value} snapshot can only be superseded by another", field="kind"
        )
    with _disk_full_explained("the snapshot"):
        return _create(
            db, settings, old.project_id, data, acting, supersedes=old, progress=progress
        )


def get_snapshot(db: Session, snapshot_id: int) -> Snapshot:
    snapshot = db.get(Snapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(f"no snapshot with id {snapshot_id}")
    return snapshot


def list_snapshots(db: Session, project_id: int) -> list[Snapshot]:
    """A project's snapshots, newest first."""
    query = select(Snapshot).where(Snapshot.project_id == project_id).order_by(Snapshot.id.desc())
    return list(db.scalars(query))


def preview_rows(
    settings: Settings, snapshot: Snapshot, split: str, limit: int = 20
) -> list[dict[str, Any]]:
    """The first `limit` rows of a split, read from its JSONL file."""
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}", field="split")
    if not 1 <= limit <= MAX_PREVIEW:
        raise InvalidInput(f"limit must be between 1 and {MAX_PREVIEW}", field="limit")
    path = settings.data_dir / snapshot.path / f"{split}.jsonl"
    if not path.is_file():
        raise NotFound(f"snapshot {snapshot.id}'s files are missing from the data folder")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if len(rows) == limit:
                break
    return rows


def export_judgements(
    db: Session, settings: Settings, project_id: int, kind: str, filters: SnapshotFilters
) -> ExportOut:
    """Raw judgements or KTO rows (judgements.py) in the snapshot layout under
    `<data_dir>/exports/`, named by content: the same selection of the same labels is the
    same folder."""
    if kind not in ("raw", "kto"):
        raise InvalidInput("kind must be raw or kto", field="kind")
    check_filters(db, project_id, filters, kind)
    filters = resolve_sources(db, project_id, filters)
    with _disk_full_explained("the export"):
        return _export(db, settings, project_id, kind, filters)


def _export(
    db: Session, settings: Settings, project_id: int, kind: str, filters: SnapshotFilters
) -> ExportOut:
    partial, counts, digest = _write_partial(db, settings, project_id, kind, filters)
    relative = f"exports/project-{project_id}-{kind}-{digest[:16]}"
    target = settings.data_dir / relative
    try:
        write_manifest(
            partial,
            {
                "kind": kind,
                "project_id": project_id,
                "filters": filters.model_dump(mode="json"),
                "row_counts": counts,
                "content_hash": digest,
            },
        )
        seal(partial)
        if target.exists():
            remove(partial)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(partial, target)
    except BaseException:
        remove(partial)
        raise
    return ExportOut(
        kind=kind,  # type: ignore[arg-type]
        project_id=project_id,
        filters=filters.model_dump(mode="json"),
        content_hash=digest,
        row_counts=counts,
        path=relative,
    )
