"""Which guideline version each user last read in a project, so the workbench can say "the
guideline changed since you last read it". Labels record their own version when submitted;
this is only about what the person has seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import GuidelineRead, GuidelineVersion, User
from app.models.base import utcnow
from app.services.guidelines import current_guideline
from app.services.prompts import storable_id


@dataclass(frozen=True)
class GuidelineStatus:
    # The current (highest published) version, if any.
    version: GuidelineVersion | None
    # A current version exists and is not the one last read (or none was ever read).
    changed_since_read: bool
    last_read_version: int | None


def current_for_labeler(db: Session, user: User, project_id: int) -> GuidelineStatus:
    current = _current(db, project_id)
    read = db.get(GuidelineRead, (user.id, project_id), populate_existing=True)
    last_read = None
    if read is not None:
        last_read = db.scalar(
            select(GuidelineVersion.version).where(GuidelineVersion.id == read.guideline_version_id)
        )
    return GuidelineStatus(
        version=current,
        changed_since_read=current is not None
        and (read is None or read.guideline_version_id != current.id),
        last_read_version=last_read,
    )


def mark_read(
    db: Session, user: User, project_id: int, *, now: datetime | None = None
) -> GuidelineVersion | None:
    """Records the current version as read by `user`; None (and nothing stored) while the
    project has no published guideline."""
    current = _current(db, project_id)
    if current is None:
        return None
    values = {"guideline_version_id": current.id, "read_at": now or utcnow()}
    # One statement, so two tabs opening the guideline at once cannot both insert.
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.execute(
        insert(GuidelineRead)
        .values(user_id=user.id, project_id=project_id, **values)
        .on_conflict_do_update(index_elements=["user_id", "project_id"], set_=values)
    )
    db.commit()
    return current


def _current(db: Session, project_id: int) -> GuidelineVersion | None:
    if not storable_id(project_id):
        raise NotFound(f"no project with id {project_id}")
    return current_guideline(db, project_id)
