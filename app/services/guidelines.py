"""Guidelines: each project's markdown, kept as immutable numbered versions.

Saving adds version N+1 as a draft; publishing stamps a draft's published_at. The current
guideline is the highest-numbered published version, and versions are published in order, so
labels recorded under one version are never silently re-read under an older text."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import GuidelineVersion, Project, User
from app.models.base import utcnow
from app.schemas.guidelines import GuidelineSave

DIFF_CONTEXT = 3


def _require_project(db: Session, project_id: int, *, lock: bool = False) -> None:
    """404 for an unknown project; with lock, holds its row so writers take turns (PostgreSQL)."""
    query = select(Project.id).where(Project.id == project_id)
    if lock:
        query = query.with_for_update()
    if db.scalar(query) is None:
        raise NotFound(f"no project with id {project_id}")


def list_versions(
    db: Session, project_id: int, *, published_only: bool = False
) -> list[GuidelineVersion]:
    """Every version of the project's guideline, oldest first; drafts only for their editors
    (`published_only` for labelers)."""
    _require_project(db, project_id)
    query = (
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version)
    )
    if published_only:
        query = query.where(GuidelineVersion.published_at.is_not(None))
    return list(db.scalars(query))


def get_version(
    db: Session, project_id: int, version: int, *, published_only: bool = False
) -> GuidelineVersion:
    """One version; with `published_only` a draft answers as a version that does not exist."""
    _require_project(db, project_id)
    found = db.scalar(
        select(GuidelineVersion).where(
            GuidelineVersion.project_id == project_id, GuidelineVersion.version == version
        )
    )
    if found is None or (published_only and found.published_at is None):
        raise NotFound(f"project {project_id} has no guideline version {version}")
    return found


def current_guideline(db: Session, project_id: int) -> GuidelineVersion | None:
    """The version labelers work under: the highest-numbered published one, if any."""
    _require_project(db, project_id)
    return db.scalar(
        select(GuidelineVersion)
        .where(
            GuidelineVersion.project_id == project_id,
            GuidelineVersion.published_at.is_not(None),
        )
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )


def latest_version(db: Session, project_id: int) -> GuidelineVersion | None:
    """The highest-numbered version, draft or not: what the next edit starts from."""
    _require_project(db, project_id)
    return _latest(db, project_id)


def _latest(db: Session, project_id: int) -> GuidelineVersion | None:
    return db.scalar(
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id)
        .order_by(GuidelineVersion.version.desc())
        .limit(1)
    )


def save_version(
    db: Session, project_id: int, data: GuidelineSave, *, acting: User
) -> GuidelineVersion:
    """Adds the next version as a draft; existing versions are never changed."""
    _require_project(db, project_id, lock=True)
    latest = _latest(db, project_id)
    if latest is not None and latest.body == data.body:
        raise InvalidInput(f"nothing changed since version {latest.version}", field="body")
    number = (latest.version if latest is not None else 0) + 1
    created = GuidelineVersion(
        project_id=project_id,
        version=number,
        body=data.body,
        note=data.note,
        created_by_id=acting.id,
    )
    db.add(created)
    try:
        db.commit()
    except IntegrityError as error:
        # Only another save of the same project racing this one can take the number.
        db.rollback()
        raise Conflict(
            f"version {number} was saved by someone else just now; reload and try again"
        ) from error
    return created


def publish_version(db: Session, project_id: int, version: int) -> GuidelineVersion:
    """Makes a draft the current guideline; only a draft newer than the current one."""
    _require_project(db, project_id, lock=True)
    found = get_version(db, project_id, version)
    if found.published_at is not None:
        raise Conflict(f"version {version} is already published")
    newest_published = db.scalar(
        select(func.max(GuidelineVersion.version)).where(
            GuidelineVersion.project_id == project_id,
            GuidelineVersion.published_at.is_not(None),
        )
    )
    if newest_published is not None and newest_published > version:
        raise Conflict(
            f"version {newest_published} is published and newer than version {version}; "
            "save a new version instead"
        )
    found.published_at = utcnow()
    db.commit()
    return found


def is_publishable(found: GuidelineVersion, current: GuidelineVersion | None) -> bool:
    """A draft newer than the current guideline (what publish_version accepts)."""
    return found.published_at is None and (current is None or found.version > current.version)


def authors(db: Session, versions: list[GuidelineVersion]) -> dict[int, str]:
    """{user id: username} for whoever created the given versions."""
    ids = {found.created_by_id for found in versions if found.created_by_id is not None}
    if not ids:
        return {}
    rows = db.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {user_id: username for user_id, username in rows}


# --- diffs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    """One row of a line diff; "skipped" stands for `skipped` unchanged lines left out."""

    kind: Literal["same", "added", "removed", "skipped"]
    old_number: int | None = None
    new_number: int | None = None
    text: str = ""
    skipped: int = 0


@dataclass(frozen=True)
class GuidelineDiff:
    old: GuidelineVersion
    new: GuidelineVersion
    unified: list[str]
    rows: list[DiffLine]

    @property
    def added(self) -> int:
        return sum(1 for row in self.rows if row.kind == "added")

    @property
    def removed(self) -> int:
        return sum(1 for row in self.rows if row.kind == "removed")


def diff_versions(
    db: Session, project_id: int, a: int, b: int, *, published_only: bool = False
) -> GuidelineDiff:
    """What changed from version a to version b (either order; a == b gives no changes)."""
    old = get_version(db, project_id, a, published_only=published_only)
    new = get_version(db, project_id, b, published_only=published_only)
    old_lines, new_lines = old.body.splitlines(), new.body.splitlines()
    unified = list(
        difflib.unified_diff(
            old_lines,
            new_lines,
            fromfile=f"version {a}",
            tofile=f"version {b}",
            n=DIFF_CONTEXT,
            lineterm="",
        )
    )
    return GuidelineDiff(old=old, new=new, unified=unified, rows=_rows(old_lines, new_lines))


def _rows(old: list[str], new: list[str]) -> list[DiffLine]:
    """Changed lines with DIFF_CONTEXT unchanged lines around them, like a unified diff."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    rows: list[DiffLine] = []
    shown_until = 0  # old lines before this index are shown or counted as skipped
    for group in matcher.get_grouped_opcodes(DIFF_CONTEXT):
        first = group[0][1]
        if first > shown_until:
            rows.append(DiffLine("skipped", skipped=first - shown_until))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(
                    DiffLine("same", i + 1, j + 1, old[i])
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
                continue
            rows.extend(DiffLine("removed", old_number=i + 1, text=old[i]) for i in range(i1, i2))
            rows.extend(DiffLine("added", new_number=j + 1, text=new[j]) for j in range(j1, j2))
        shown_until = group[-1][2]
    if rows and shown_until < len(old):
        rows.append(DiffLine("skipped", skipped=len(old) - shown_until))
    return rows
