"""The data browser page: a project's labels and prompts, filtered by a GET form (so a view is
a bookmarkable URL), a page at a time by keyset, and the CSV of every matching row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from app.deps import SessionDep, WebStaff, read_only
from app.errors import InvalidInput
from app.models import LabelSource, PromptCategory, ResponseSource, Role
from app.schemas.common import Text
from app.schemas.labeling import SKIP_REASON_LABELS, SkipReason
from app.services import browsing, projects, queues, users
from app.services.browsing import LabelFilters, PromptFilters
from app.services.prompts import MAX_ID
from app.web.rendering import render

router = APIRouter(prefix="/projects")

VIEWS = {
    "comparisons": "comparison",
    "demonstrations": "demonstration",
    "skips": "skip",
    "prompts": None,
}
Parsed = TypeVar("Parsed")


def _parse(field: str, value: str, convert: Callable[[str], Parsed]) -> Parsed | None:
    """An empty form field is "any"; anything else must parse, or the page says which field."""
    value = value.strip()
    if not value:
        return None
    try:
        return convert(value)
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a valid value") from None


def _id(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_ID:
        raise ValueError(value)
    return number


def _yes_no(value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(value)
    return value == "yes"


def _share(value: str) -> float:
    """A share from 0 to 1, written as a decimal (0.5) or a percentage (50%)."""
    number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


def _filters(view: str, values: dict[str, str]) -> LabelFilters | PromptFilters:
    if view not in VIEWS:
        raise InvalidInput("view must be comparisons, demonstrations, skips or prompts")
    since, until = browsing.day_bounds(
        _parse("from", values["since"], date.fromisoformat),
        _parse("to", values["until"], date.fromisoformat),
    )
    category = _parse("category", values["category"], PromptCategory)
    search = values["search"].strip() or None
    if view == "prompts":
        return PromptFilters(
            category=category,
            response_source=_parse("response source", values["response_source"], ResponseSource),
            skipped=_parse("skipped", values["skipped"], _yes_no),
            since=since,
            until=until,
            search=search,
        )
    return LabelFilters(
        kind=VIEWS[view] or "comparison",
        queue_id=_parse("queue", values["queue_id"], _id),
        labeler_id=_parse("labeler", values["labeler_id"], _id),
        source=_parse("source", values["source"], LabelSource),
        category=category,
        flag=values["flag"].strip() or None,
        guideline_version=_parse("guideline version", values["guideline_version"], _id),
        gold=_parse("gold", values["gold"], _yes_no),
        since=since,
        until=until,
        search=search,
        agreement_below=_parse("agreement below", values["agreement_below"], _share),
        skip_reason=_parse("skip reason", values["skip_reason"], SkipReason),
    )


def filter_values(
    queue_id: Text = "",
    labeler_id: Text = "",
    source: Text = "",
    response_source: Text = "",
    category: Text = "",
    flag: Text = "",
    guideline_version: Text = "",
    gold: Text = "",
    since: Text = "",
    until: Text = "",
    search: Text = "",
    agreement_below: Text = "",
    skip_reason: Text = "",
    skipped: Text = "",
) -> dict[str, str]:
    """The filter form's fields as sent (the page shows them back; the CSV reads the same)."""
    return {
        "queue_id": queue_id,
        "labeler_id": labeler_id,
        "source": source,
        "response_source": response_source,
        "category": category,
        "flag": flag,
        "guideline_version": guideline_version,
        "gold": gold,
        "since": since,
        "until": until,
        "search": search,
        "agreement_below": agreement_below,
        "skip_reason": skip_reason,
        "skipped": skipped,
    }


FilterValues = Annotated[dict[str, str], Depends(filter_values)]


@router.get("/{project_id}/data")
@read_only
def data_page(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    values: FilterValues,
    view: Text = "comparisons",
    cursor: Text = "",
) -> Response:
    project = projects.get_project(db, project_id)
    shown = {key: value for key, value in values.items() if value.strip()}
    query = urlencode({"view": view, **shown})
    context: dict[str, Any] = {
        "project": project,
        "view": view,
        "values": values,
        "query": query,
        "queues": queues.list_queues(db, project_id),
        "labelers": [u for u in users.list_users(db) if u.role == Role.labeler],
        "categories": list(PromptCategory),
        "flags": project.label_schema.get("flags", []),
        "skip_reasons": {reason.value: label for reason, label in SKIP_REASON_LABELS.items()},
        "page": None,
        "error": None,
        "first_page": not cursor.strip(),
    }
    try:
        filters = _filters(view, values)
        after = _parse("cursor", cursor, _id)
        if isinstance(filters, PromptFilters):
            context["page"] = browsing.list_prompts(db, project_id, filters, cursor=after)
        else:
            context["page"] = browsing.list_labels(db, project_id, filters, cursor=after)
    except InvalidInput as error:
        context["error"] = error.message
        return render(request, "browsing/data.html", context, user=user, status_code=422)
    return render(request, "browsing/data.html", context, user=user)


@router.get("/{project_id}/data.csv")
@read_only
def data_csv(
    db: SessionDep,
    _: WebStaff,
    project_id: int,
    values: FilterValues,
    view: Text = "comparisons",
) -> Response:
    filters = _filters(view, values)
    if isinstance(filters, PromptFilters):
        lines = browsing.prompts_csv(db, project_id, filters)
    else:
        lines = browsing.labels_csv(db, project_id, filters)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="project-{project_id}-{view}.csv"'},
    )
