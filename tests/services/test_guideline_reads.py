"""Which guideline version a user last read, and whether the current one is newer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import GuidelineRead, GuidelineVersion, Project, User
from app.models.base import utcnow
from app.services import guideline_reads
from tests.conftest import make_user
from tests.factories import make_project, publish_guideline


def reads(db: Session) -> list[tuple[int, int, int]]:
    rows = db.execute(
        select(
            GuidelineRead.user_id, GuidelineRead.project_id, GuidelineRead.guideline_version_id
        ).order_by(GuidelineRead.user_id, GuidelineRead.project_id)
    )
    return [tuple(row) for row in rows]


def status(db: Session, user: User, project: Project) -> tuple[int | None, bool, int | None]:
    found = guideline_reads.current_for_labeler(db, user, project.id)
    return (
        found.version.version if found.version else None,
        found.changed_since_read,
        found.last_read_version,
    )


def test_nothing_published_means_nothing_changed_and_nothing_to_mark(
    db: Session, labeler: User
) -> None:
    project = make_project(db)
    # A draft is not what labelers work under.
    db.add(GuidelineVersion(project_id=project.id, version=1, body="Draft."))
    db.commit()
    assert status(db, labeler, project) == (None, False, None)
    assert guideline_reads.mark_read(db, labeler, project.id) is None
    assert reads(db) == []


def test_reading_follows_each_published_version(db: Session, labeler: User) -> None:
    project = make_project(db)
    first = publish_guideline(db, project, 1)
    assert status(db, labeler, project) == (1, True, None)

    start = utcnow()
    assert guideline_reads.mark_read(db, labeler, project.id, now=start) == first
    assert status(db, labeler, project) == (1, False, 1)
    assert reads(db) == [(labeler.id, project.id, first.id)]

    second = publish_guideline(db, project, 2, "Be kinder.")
    db.add(GuidelineVersion(project_id=project.id, version=3, body="Unpublished."))
    db.commit()
    assert status(db, labeler, project) == (2, True, 1)

    later = start + timedelta(hours=1)
    assert guideline_reads.mark_read(db, labeler, project.id, now=later) == second
    assert status(db, labeler, project) == (2, False, 2)
    read = db.get(GuidelineRead, (labeler.id, project.id), populate_existing=True)
    assert read is not None
    assert (read.guideline_version_id, read.read_at) == (second.id, later)
    # Marking again is harmless: still one row.
    guideline_reads.mark_read(db, labeler, project.id, now=later)
    assert reads(db) == [(labeler.id, project.id, second.id)]


def test_reads_are_per_user_and_per_project(db: Session, labeler: User) -> None:
    omar = make_user(db, "omar")
    helpful = make_project(db, "Helpful")
    harmless = make_project(db, "Harmless")
    one = publish_guideline(db, helpful, 1)
    publish_guideline(db, harmless, 1)
    guideline_reads.mark_read(db, labeler, helpful.id)
    assert status(db, labeler, helpful) == (1, False, 1)
    assert status(db, labeler, harmless) == (1, True, None)
    assert status(db, omar, helpful) == (1, True, None)
    assert reads(db) == [(labeler.id, helpful.id, one.id)]


@pytest.mark.parametrize("project_id", [987_654, 2**40, -1])
def test_an_unknown_project_is_not_found(db: Session, labeler: User, project_id: int) -> None:
    with pytest.raises(NotFound) as caught:
        guideline_reads.current_for_labeler(db, labeler, project_id)
    assert caught.value.message == f"no project with id {project_id}"
    with pytest.raises(NotFound):
        guideline_reads.mark_read(db, labeler, project_id)
    assert reads(db) == []
