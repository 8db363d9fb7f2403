"""app.services.guidelines: immutable versions, publishing in order, the current one, diffs."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import GuidelineVersion, Project, User
from app.schemas.guidelines import GuidelineSave
from app.schemas.projects import ProjectCreate
from app.services import guidelines, projects
from app.services.guidelines import DiffLine

V1 = "# Rules\n\nBe kind.\nBe brief.\n"
V2 = "# Rules\n\nBe kind.\nBe accurate.\nCite sources.\n"


@pytest.fixture
def project(db: Session, admin: User) -> Project:
    return projects.create_project(db, ProjectCreate(name="Chat"), acting=admin)


def save(
    db: Session, project: Project, acting: User, body: str, note: str = ""
) -> GuidelineVersion:
    return guidelines.save_version(
        db, project.id, GuidelineSave(body=body, note=note), acting=acting
    )


def stored_rows(db: Session) -> list[tuple[object, ...]]:
    """Every guideline row as the database holds it."""
    db.expire_all()
    table = GuidelineVersion.__table__
    return [tuple(row) for row in db.execute(table.select().order_by(table.c.id))]


# --- saving ---------------------------------------------------------------------------------


def test_first_save_is_version_1_as_a_draft(db: Session, admin: User, project: Project) -> None:
    saved = save(db, project, admin, V1, note="  first cut  ")

    db.expire_all()
    assert (saved.project_id, saved.version, saved.body, saved.note) == (
        project.id,
        1,
        V1,
        "first cut",
    )
    assert saved.published_at is None
    assert saved.created_by_id == admin.id
    assert isinstance(saved.created_at, datetime)
    assert guidelines.current_guideline(db, project.id) is None


def test_each_save_adds_the_next_version_and_keeps_the_old_one(
    db: Session, admin: User, project: Project
) -> None:
    first = save(db, project, admin, V1)
    before = stored_rows(db)
    second = save(db, project, admin, V2, note="accuracy")

    assert second.version == 2
    assert stored_rows(db)[0] == before[0]
    assert [(v.version, v.body, v.note) for v in guidelines.list_versions(db, project.id)] == [
        (1, V1, ""),
        (2, V2, "accuracy"),
    ]
    assert first.id != second.id


def test_versions_are_numbered_per_project(db: Session, admin: User, project: Project) -> None:
    other = projects.create_project(db, ProjectCreate(name="Other"), acting=admin)
    save(db, project, admin, V1)
    save(db, project, admin, V2)

    assert save(db, other, admin, V1).version == 1
    assert [v.version for v in guidelines.list_versions(db, other.id)] == [1]


def test_saving_the_latest_body_again_is_refused(
    db: Session, admin: User, project: Project
) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)
    before = stored_rows(db)

    with pytest.raises(InvalidInput) as refused:
        save(db, project, admin, V2, note="same text, new note")

    assert refused.value.message == "nothing changed since version 2"
    assert refused.value.field == "body"
    assert refused.value.status_code == 422
    db.rollback()
    assert stored_rows(db) == before


def test_going_back_to_an_older_text_is_a_new_version(
    db: Session, admin: User, project: Project
) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)

    assert save(db, project, admin, V1, note="revert").version == 3


def test_line_endings_are_normalised(db: Session, admin: User, project: Project) -> None:
    saved = save(db, project, admin, "a\r\nb\rc")

    assert saved.body == "a\nb\nc"
    with pytest.raises(InvalidInput, match="nothing changed since version 1"):
        save(db, project, admin, "a\nb\nc")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Value error, a guideline needs a body"),
        (" \n\t\r\n", "Value error, a guideline needs a body"),
        ("x" * 200_001, "String should have at most 200000 characters"),
    ],
    ids=["empty", "blank", "too-long"],
)
def test_invalid_body_is_refused(body: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        GuidelineSave(body=body)

    assert [(e["loc"], e["msg"]) for e in refused.value.errors()] == [(("body",), message)]


def test_longest_body_is_accepted(db: Session, admin: User, project: Project) -> None:
    assert len(save(db, project, admin, "x" * 200_000).body) == 200_000
    # CRLF counts as one character, as it is stored.
    assert GuidelineSave(body="x\r\n" * 100_000).body == "x\n" * 100_000


def test_note_too_long_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        GuidelineSave(body="x", note="n" * 501)
    with pytest.raises(ValidationError):
        GuidelineSave.model_validate({"body": "x", "version": 3})


# --- publishing and the current guideline ---------------------------------------------------


def test_current_is_the_highest_published_version(
    db: Session, admin: User, project: Project
) -> None:
    save(db, project, admin, V1)
    assert guidelines.current_guideline(db, project.id) is None

    published = guidelines.publish_version(db, project.id, 1)
    assert published.version == 1
    assert isinstance(published.published_at, datetime)
    assert guidelines.current_guideline(db, project.id) == published

    save(db, project, admin, V2)
    current = guidelines.current_guideline(db, project.id)
    assert current is not None and current.version == 1, "a draft does not replace the current"

    guidelines.publish_version(db, project.id, 2)
    current = guidelines.current_guideline(db, project.id)
    assert current is not None and (current.version, current.body) == (2, V2)
    # Publishing v2 leaves v1 as it was.
    assert guidelines.get_version(db, project.id, 1).published_at == published.published_at


def test_publishing_a_published_version_is_409(db: Session, admin: User, project: Project) -> None:
    save(db, project, admin, V1)
    guidelines.publish_version(db, project.id, 1)
    before = stored_rows(db)

    with pytest.raises(Conflict) as refused:
        guidelines.publish_version(db, project.id, 1)

    assert refused.value.message == "version 1 is already published"
    db.rollback()
    assert stored_rows(db) == before


def test_publishing_a_draft_older_than_the_current_is_409(
    db: Session, admin: User, project: Project
) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)
    guidelines.publish_version(db, project.id, 2)
    before = stored_rows(db)

    with pytest.raises(Conflict) as refused:
        guidelines.publish_version(db, project.id, 1)

    assert refused.value.message == (
        "version 2 is published and newer than version 1; save a new version instead"
    )
    db.rollback()
    assert stored_rows(db) == before
    assert guidelines.get_version(db, project.id, 1).published_at is None


def test_a_draft_may_be_skipped(db: Session, admin: User, project: Project) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)

    guidelines.publish_version(db, project.id, 2)

    current = guidelines.current_guideline(db, project.id)
    assert current is not None and current.version == 2
    versions = guidelines.list_versions(db, project.id)
    assert [guidelines.is_publishable(v, current) for v in versions] == [False, False]


def test_is_publishable(db: Session, admin: User, project: Project) -> None:
    one, two = save(db, project, admin, V1), save(db, project, admin, V2)
    assert [guidelines.is_publishable(v, None) for v in (one, two)] == [True, True]
    guidelines.publish_version(db, project.id, 1)
    assert [guidelines.is_publishable(v, one) for v in (one, two)] == [False, True]


# --- not found ------------------------------------------------------------------------------


def test_unknown_project_is_not_found_everywhere(db: Session, admin: User) -> None:
    calls = [
        lambda: guidelines.list_versions(db, 999_999),
        lambda: guidelines.get_version(db, 999_999, 1),
        lambda: guidelines.current_guideline(db, 999_999),
        lambda: guidelines.latest_version(db, 999_999),
        lambda: guidelines.save_version(db, 999_999, GuidelineSave(body=V1), acting=admin),
        lambda: guidelines.publish_version(db, 999_999, 1),
        lambda: guidelines.diff_versions(db, 999_999, 1, 2),
    ]
    for call in calls:
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.message == "no project with id 999999"
    db.rollback()
    assert db.scalar(select(func.count()).select_from(GuidelineVersion)) == 0


def test_unknown_version_is_not_found(db: Session, admin: User, project: Project) -> None:
    save(db, project, admin, V1)
    message = f"project {project.id} has no guideline version 2"
    for call in (
        lambda: guidelines.get_version(db, project.id, 2),
        lambda: guidelines.publish_version(db, project.id, 2),
        lambda: guidelines.diff_versions(db, project.id, 1, 2),
        lambda: guidelines.diff_versions(db, project.id, 2, 1),
    ):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.message == message


def test_a_version_of_another_project_is_not_found(
    db: Session, admin: User, project: Project
) -> None:
    other = projects.create_project(db, ProjectCreate(name="Other"), acting=admin)
    save(db, other, admin, V1)

    with pytest.raises(NotFound):
        guidelines.get_version(db, project.id, 1)
    assert guidelines.list_versions(db, project.id) == []
    assert guidelines.latest_version(db, project.id) is None


# --- diffs ----------------------------------------------------------------------------------


def test_diff_gives_a_unified_diff_and_rows(db: Session, admin: User, project: Project) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)

    diff = guidelines.diff_versions(db, project.id, 1, 2)

    assert (diff.old.version, diff.new.version) == (1, 2)
    assert diff.unified == [
        "--- version 1",
        "+++ version 2",
        "@@ -1,4 +1,5 @@",
        " # Rules",
        " ",
        " Be kind.",
        "-Be brief.",
        "+Be accurate.",
        "+Cite sources.",
    ]
    assert diff.rows == [
        DiffLine("same", 1, 1, "# Rules"),
        DiffLine("same", 2, 2, ""),
        DiffLine("same", 3, 3, "Be kind."),
        DiffLine("removed", old_number=4, text="Be brief."),
        DiffLine("added", new_number=4, text="Be accurate."),
        DiffLine("added", new_number=5, text="Cite sources."),
    ]
    assert (diff.added, diff.removed) == (2, 1)


def test_diff_backwards_and_with_itself(db: Session, admin: User, project: Project) -> None:
    save(db, project, admin, V1)
    save(db, project, admin, V2)

    backwards = guidelines.diff_versions(db, project.id, 2, 1)
    same = guidelines.diff_versions(db, project.id, 2, 2)

    assert backwards.unified[:3] == ["--- version 2", "+++ version 1", "@@ -1,5 +1,4 @@"]
    assert (backwards.added, backwards.removed) == (1, 2)
    assert (same.unified, same.rows) == ([], [])


def test_diff_rows_skip_long_unchanged_stretches(
    db: Session, admin: User, project: Project
) -> None:
    lines = [f"line {n}" for n in range(1, 21)]
    save(db, project, admin, "\n".join(lines))
    changed = [*lines]
    changed[9] = "line ten"
    save(db, project, admin, "\n".join(changed))

    rows = guidelines.diff_versions(db, project.id, 1, 2).rows

    assert rows == [
        DiffLine("skipped", skipped=6),
        DiffLine("same", 7, 7, "line 7"),
        DiffLine("same", 8, 8, "line 8"),
        DiffLine("same", 9, 9, "line 9"),
        DiffLine("removed", old_number=10, text="line 10"),
        DiffLine("added", new_number=10, text="line ten"),
        DiffLine("same", 11, 11, "line 11"),
        DiffLine("same", 12, 12, "line 12"),
        DiffLine("same", 13, 13, "line 13"),
        DiffLine("skipped", skipped=7),
    ]


def test_authors_names_who_saved_each_version(db: Session, admin: User, project: Project) -> None:
    one = save(db, project, admin, V1)

    assert guidelines.authors(db, [one]) == {admin.id: "root-admin"}
    assert guidelines.authors(db, []) == {}
