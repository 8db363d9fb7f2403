"""/api/v1 prompts and their responses: staff only, since responses show their source."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiStaff, SessionDep
from app.schemas.prompts import PromptCreate, PromptOut, PromptPage, ResponseCreate, ResponseOut
from app.services import prompts
from app.services.prompts import MAX_ID

router = APIRouter(responses=STANDARD_ERRORS, tags=["prompts"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]


@router.post(
    "/projects/{project_id}/prompts",
    response_model=PromptOut,
    status_code=status.HTTP_201_CREATED,
)
def create_prompt(
    project_id: int, data: PromptCreate, db: SessionDep, staff: ApiStaff
) -> PromptOut:
    return PromptOut.model_validate(prompts.create_prompt(db, project_id, data, staff))


@router.get("/projects/{project_id}/prompts", response_model=PromptPage)
def list_prompts(
    project_id: int, db: SessionDep, _: ApiStaff, limit: Limit = 50, offset: Offset = 0
) -> PromptPage:
    found = prompts.list_prompts(db, project_id, limit, offset)
    return PromptPage(
        items=[PromptOut.model_validate(prompt) for prompt in found],
        total=prompts.count_prompts(db, project_id),
        limit=limit,
        offset=offset,
    )


@router.get("/prompts/{prompt_id}", response_model=PromptOut)
def get_prompt(prompt_id: int, db: SessionDep, _: ApiStaff) -> PromptOut:
    return PromptOut.model_validate(prompts.get_prompt(db, prompt_id))


@router.post(
    "/prompts/{prompt_id}/responses",
    response_model=ResponseOut,
    status_code=status.HTTP_201_CREATED,
)
def add_response(
    prompt_id: int, data: ResponseCreate, db: SessionDep, staff: ApiStaff
) -> ResponseOut:
    return ResponseOut.model_validate(prompts.add_response(db, prompt_id, data, staff))


@router.get("/prompts/{prompt_id}/responses", response_model=list[ResponseOut])
def list_responses(prompt_id: int, db: SessionDep, _: ApiStaff) -> list[ResponseOut]:
    return [ResponseOut.model_validate(r) for r in prompts.list_responses(db, prompt_id)]
