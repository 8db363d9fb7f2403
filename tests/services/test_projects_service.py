"""app.services.projects: create, update, archive and list projects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Project, User
from app.schemas.projects import DEFAULT_FLAGS, Flag, ProjectCreate, ProjectUpdate
from app.services import projects


def create(db: Session, acting: User, name: str, **fields: Any) -> Project:
    return projects.create_project(db, ProjectCreate(name=name, **fields), acting=acting)


def test_create_project_has_the_default_flags(db: Session, admin: User) -> None:
    project = create(db, admin, "  Helpful chat  ")
    assert project.id is not None
    assert project.name == "Helpful chat"
    assert project.description == ""
    assert project.is_archived is False
    assert project.created_by_id == admin.id
    flags = project.label_schema["flags"]
    assert len(flags) == 10
    assert flags[0] == {"key": "fails_instruction", "label": "Fails to follow the instruction"}
    assert flags[-1] == {"key": "other", "label": "Other (with text)"}
    assert project.label_schema == {"flags": [flag.model_dump() for flag in DEFAULT_FLAGS]}


def test_create_project_with_own_flags_and_description(db: Session, admin: User) -> None:
    project = create(
        db,
        admin,
        "Summaries",
        description="TL;DR quality",
        flags=[Flag(key="too_long", label="Too long")],
    )
    db.expire_all()
    stored = db.get(Project, project.id)
    assert stored is not None
    assert stored.description == "TL;DR quality"
    assert stored.label_schema == {"flags": [{"key": "too_long", "label": "Too long"}]}


def test_duplicate_project_name_is_a_conflict(db: Session, admin: User) -> None:
    first = create(db, admin, "Helpful chat")
    with pytest.raises(Conflict) as caught:
        create(db, admin, "Helpful chat")
    assert caught.value.field == "name"
    assert caught.value.message == "a project named 'Helpful chat' exists"
    assert db.scalars(select(Project.id)).all() == [first.id]


def test_update_project_replaces_flags_and_keeps_other_schema_keys(
    db: Session, admin: User
) -> None:
    project = create(db, admin, "Chat")
    project.label_schema = {**project.label_schema, "likert": 7}
    db.commit()

    updated = projects.update_project(
        db,
        project.id,
        ProjectUpdate(
            flags=[Flag(key="rude", label="Rude"), Flag(key="wrong", label="Factually wrong")],
            description="Be kind",
        ),
    )
    assert updated.name == "Chat"
    assert updated.description == "Be kind"
    db.expire_all()
    stored = projects.get_project(db, project.id)
    assert stored.label_schema == {
        "likert": 7,
        "flags": [
            {"key": "rude", "label": "Rude"},
            {"key": "wrong", "label": "Factually wrong"},
        ],
    }


def test_update_project_with_nothing_set_changes_nothing(db: Session, admin: User) -> None:
    project = create(db, admin, "Chat", description="as is")
    schema = dict(project.label_schema)
    updated = projects.update_project(db, project.id, ProjectUpdate())
    assert (updated.name, updated.description, updated.is_archived) == ("Chat", "as is", False)
    assert updated.label_schema == schema


def test_renaming_onto_an_existing_name_is_a_conflict(db: Session, admin: User) -> None:
    create(db, admin, "Chat")
    other = create(db, admin, "Code")
    with pytest.raises(Conflict, match="a project named 'Chat' exists"):
        projects.update_project(db, other.id, ProjectUpdate(name="Chat"))
    assert projects.get_project(db, other.id).name == "Code"


def test_archive_and_list_with_and_without_archived(db: Session, admin: User) -> None:
    create(db, admin, "Zeta")
    old = create(db, admin, "Alpha")
    create(db, admin, "Beta")
    archived = projects.update_project(db, old.id, ProjectUpdate(is_archived=True))
    assert archived.is_archived is True

    assert [p.name for p in projects.list_projects(db)] == ["Beta", "Zeta"]
    assert [p.name for p in projects.list_projects(db, include_archived=True)] == [
        "Alpha",
        "Beta",
        "Zeta",
    ]

    projects.update_project(db, old.id, ProjectUpdate(is_archived=False))
    assert [p.name for p in projects.list_projects(db)] == ["Alpha", "Beta", "Zeta"]


def test_get_unknown_project_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound, match="no project with id 999999"):
        projects.get_project(db, 999_999)
    with pytest.raises(NotFound):
        projects.update_project(db, 999_999, ProjectUpdate(name="x"))
