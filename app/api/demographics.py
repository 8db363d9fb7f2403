"""/api/v1/demographics: the k-anonymous aggregate of labeler demographics, for admins.

There is deliberately no route that returns one person's answers."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, SessionDep
from app.schemas.demographics import DemographicsSummary
from app.services import demographics

router = APIRouter(responses=STANDARD_ERRORS, prefix="/demographics", tags=["demographics"])


@router.get("", response_model=DemographicsSummary)
def demographics_summary(db: SessionDep, _: ApiAdmin) -> DemographicsSummary:
    return demographics.summarize(db)
