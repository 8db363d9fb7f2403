"""/api/v1 principles, critique runs' revisions, and the judge's suggestions in queues.
Staff only (admins and researchers); a queue's suggestion mode is an admin's setting, like the
queue's others. Critique runs themselves launch through POST /projects/{id}/runs (kind
"critique")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.deps import MAX_ID, ApiAdmin, ApiStaff, SessionDep
from app.schemas.critique import (
    PrincipleCreate,
    PrincipleOut,
    QueueSuggestions,
    RevisionOut,
    SuggestionModeSet,
)
from app.services import critique, principles, suggestions

router = APIRouter(tags=["critique"])

Id = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("/projects/{project_id}/principles", response_model=list[PrincipleOut])
def list_principles(
    project_id: int, db: SessionDep, _: ApiStaff, history: bool = False
) -> list[PrincipleOut]:
    """The current principles; with `history`, every version, retired ones too."""
    found = principles.list_principles(db, project_id, history=history)
    return principles.principles_out(db, found)


@router.post(
    "/projects/{project_id}/principles",
    response_model=PrincipleOut,
    status_code=status.HTTP_201_CREATED,
)
def create_principle(
    project_id: int, data: PrincipleCreate, db: SessionDep, user: ApiStaff
) -> PrincipleOut:
    made = principles.create_principle(db, project_id, data, user)
    return principles.principles_out(db, [made])[0]


@router.get("/principles/{principle_id}", response_model=PrincipleOut)
def get_principle(principle_id: int, db: SessionDep, _: ApiStaff) -> PrincipleOut:
    return principles.principles_out(db, [principles.get_principle(db, principle_id)])[0]


@router.put(
    "/principles/{principle_id}", response_model=PrincipleOut, status_code=status.HTTP_201_CREATED
)
def revise_principle(
    principle_id: int, data: PrincipleCreate, db: SessionDep, user: ApiStaff
) -> PrincipleOut:
    """Stores the edit as a new version (answered), and retires this one: revisions made under
    it keep naming its exact text."""
    made = principles.revise_principle(db, principle_id, data, user)
    return principles.principles_out(db, [made])[0]


@router.delete("/principles/{principle_id}", response_model=PrincipleOut)
def retire_principle(principle_id: int, db: SessionDep, _: ApiStaff) -> PrincipleOut:
    """Retires it: no longer current, still readable with its revisions."""
    return principles.principles_out(db, [principles.retire_principle(db, principle_id)])[0]


@router.get("/projects/{project_id}/revisions", response_model=list[RevisionOut])
def list_revisions(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    run_id: Id = None,
    principle_id: Id = None,
    limit: Annotated[int, Query(ge=1, le=critique.revisions.MAX_SHOWN)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[RevisionOut]:
    """Critique runs' revisions, newest first, with the critique and the principle version."""
    return critique.list_revisions(
        db, project_id, run_id=run_id, principle_id=principle_id, limit=limit, offset=offset
    )


@router.get("/queues/{queue_id}/suggestions", response_model=QueueSuggestions)
def queue_suggestions(queue_id: int, db: SessionDep, _: ApiStaff) -> QueueSuggestions:
    """The queue's mode, and per mode how often labelers agreed with the judge's ranking."""
    return suggestions.queue_agreement(db, queue_id)


@router.put("/queues/{queue_id}/suggestions", response_model=QueueSuggestions)
def set_suggestion_mode(
    queue_id: int, data: SuggestionModeSet, db: SessionDep, _: ApiAdmin
) -> QueueSuggestions:
    suggestions.set_suggestion_mode(db, queue_id, data.mode)
    return suggestions.queue_agreement(db, queue_id)
