"""/api/v1 data browser: a project's labels and prompts, filtered and paged by keyset."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiStaff, SessionDep, read_only
from app.models import LabelSource, PromptCategory, ResponseSource
from app.schemas.browsing import LabelPage, LabelRowOut, PromptRowOut, PromptRowPage
from app.schemas.common import Text
from app.schemas.labeling import SkipReason
from app.services import browsing
from app.services.browsing import LabelFilters, PromptFilters
from app.services.prompts import MAX_ID

router = APIRouter(responses=STANDARD_ERRORS, tags=["data browser"])

Limit = Annotated[int, Query(ge=1, le=browsing.MAX_PAGE_SIZE)]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="next_cursor of the previous page")
]
Search = Annotated[Text | None, Query(max_length=200, description="words to find")]
Day = Annotated[date | None, Query(description="a day, YYYY-MM-DD (UTC), included")]
CSV = {200: {"content": {"text/csv": {}}, "description": "Every matching row as CSV."}}


def label_filters(
    kind: Literal["comparison", "demonstration", "skip"] = "comparison",
    queue_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    labeler_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    source: LabelSource | None = None,
    category: PromptCategory | None = None,
    flag: Annotated[Text | None, Query(max_length=64)] = None,
    guideline_version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    gold: bool | None = None,
    since: Day = None,
    until: Day = None,
    search: Search = None,
    agreement_below: Annotated[
        float | None,
        Query(ge=0, le=1, description="labels of tasks whose pairwise agreement is below this"),
    ] = None,
    skip_reason: Annotated[SkipReason | None, Query(description="kind skip only")] = None,
) -> LabelFilters:
    start, end = browsing.day_bounds(since, until)
    return LabelFilters(
        kind=kind,
        queue_id=queue_id,
        labeler_id=labeler_id,
        source=source,
        category=category,
        flag=flag or None,
        guideline_version=guideline_version,
        gold=gold,
        since=start,
        until=end,
        search=search or None,
        agreement_below=agreement_below,
        skip_reason=skip_reason,
    )


def prompt_filters(
    category: PromptCategory | None = None,
    response_source: ResponseSource | None = None,
    since: Day = None,
    until: Day = None,
    search: Search = None,
    skipped: Annotated[
        bool | None, Query(description="prompts a labeler skipped a task of, or none did")
    ] = None,
) -> PromptFilters:
    start, end = browsing.day_bounds(since, until)
    return PromptFilters(
        category=category,
        response_source=response_source,
        skipped=skipped,
        since=start,
        until=end,
        search=search or None,
    )


LabelQuery = Annotated[LabelFilters, Depends(label_filters)]
PromptQuery = Annotated[PromptFilters, Depends(prompt_filters)]


def csv_stream(lines: object, name: str) -> StreamingResponse:
    return StreamingResponse(
        lines,  # type: ignore[arg-type]
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/projects/{project_id}/labels", response_model=LabelPage)
@read_only
def list_labels(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    filters: LabelQuery,
    cursor: Cursor = None,
    limit: Limit = browsing.PAGE_SIZE,
) -> LabelPage:
    page = browsing.list_labels(db, project_id, filters, cursor=cursor, limit=limit)
    return LabelPage(
        items=[LabelRowOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/projects/{project_id}/labels.csv", response_class=StreamingResponse, responses=CSV)
@read_only
def labels_csv(
    project_id: int, db: SessionDep, _: ApiStaff, filters: LabelQuery
) -> StreamingResponse:
    lines = browsing.labels_csv(db, project_id, filters)
    return csv_stream(lines, f"project-{project_id}-{filters.kind}s.csv")


@router.get("/projects/{project_id}/prompt-search", response_model=PromptRowPage)
@read_only
def search_prompts(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    filters: PromptQuery,
    cursor: Cursor = None,
    limit: Limit = browsing.PAGE_SIZE,
) -> PromptRowPage:
    page = browsing.list_prompts(db, project_id, filters, cursor=cursor, limit=limit)
    return PromptRowPage(
        items=[PromptRowOut.model_validate(row) for row in page.items],
        next_cursor=page.next_cursor,
    )
