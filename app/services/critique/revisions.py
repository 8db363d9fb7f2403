"""Reading back the revisions critique runs made: for the principles page, a run's page and
the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.models import Principle, Prompt, Response, ResponseRevision
from app.schemas.critique import RevisionOut
from app.services.prompts import get_project_checked

MAX_SHOWN = 500


def list_revisions(
    db: Session,
    project_id: int,
    *,
    run_id: int | None = None,
    principle_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RevisionOut]:
    """A project's revisions, newest first; optionally one run's or one principle version's."""
    get_project_checked(db, project_id)
    original = aliased(Response)
    query = (
        select(ResponseRevision, Response, original, Principle)
        .join(Response, Response.id == ResponseRevision.response_id)
        .join(original, original.id == ResponseRevision.original_response_id)
        .join(Principle, Principle.id == ResponseRevision.principle_id)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Prompt.project_id == project_id)
    )
    if run_id is not None:
        query = query.where(ResponseRevision.run_id == run_id)
    if principle_id is not None:
        query = query.where(ResponseRevision.principle_id == principle_id)
    query = query.order_by(ResponseRevision.response_id.desc()).limit(limit).offset(offset)
    return [
        RevisionOut(
            response_id=revision.response_id,
            original_response_id=revision.original_response_id,
            prompt_id=response.prompt_id,
            principle_id=principle.id,
            principle_name=principle.name,
            principle_version=principle.version,
            run_id=revision.run_id,
            model_id=response.model_id,
            comparison_id=revision.comparison_id,
            critique=revision.critique,
            original=before.content,
            revision=response.content,
            created_at=revision.created_at,
        )
        for revision, response, before, principle in db.execute(query)
    ]
