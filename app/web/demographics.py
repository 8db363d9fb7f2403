"""Demographics pages: everyone answers for themselves; admins see only the aggregate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin, WebUser
from app.errors import DomainError
from app.models import User
from app.schemas import common
from app.schemas.demographics import FIELD_LABELS, FIELD_OPTIONS, ProfileUpdate
from app.services import demographics
from app.web.rendering import form_errors, redirect, render

router = APIRouter()

TextField = Annotated[common.Text, Form(max_length=1000)]


def _profile_page(
    request: Request,
    user: User,
    *,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "account/profile.html",
        {
            "values": values,
            "errors": errors or {},
            "options": FIELD_OPTIONS,
            "labels": FIELD_LABELS,
        },
        user=user,
        status_code=status_code,
        # Someone's own answers: not for shared caches or the back button of the next user.
        no_store=True,
    )


@router.get("/account/profile")
def profile(request: Request, db: SessionDep, user: WebUser) -> Response:
    found = demographics.own_profile(db, user)
    values = {field: (getattr(found, field) or "") if found else "" for field in FIELD_OPTIONS}
    return _profile_page(request, user, values=values)


@router.post("/account/profile")
def save_profile(
    request: Request,
    db: SessionDep,
    user: WebUser,
    age_range: TextField = "",
    gender: TextField = "",
    region: TextField = "",
    education: TextField = "",
    first_language: TextField = "",
) -> Response:
    values = {
        "age_range": age_range,
        "gender": gender,
        "region": region,
        "education": education,
        "first_language": first_language,
    }
    try:
        saved = demographics.save_own_profile(db, user, ProfileUpdate(**values))
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return _profile_page(
            request, user, values=values, errors=form_errors(error), status_code=status
        )
    notice = "Saved your answers." if saved else "Your answers are cleared."
    return redirect(request, "/account/profile", notice=notice)


@router.get("/admin/demographics")
def demographics_summary(request: Request, db: SessionDep, admin: WebAdmin) -> Response:
    return render(
        request,
        "admin/demographics.html",
        {"summary": demographics.summarize(db)},
        user=admin,
    )
