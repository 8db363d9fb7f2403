"""The role-aware home page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import SessionDep, WebUser
from app.services.overview import overview_for
from app.web.rendering import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: SessionDep, user: WebUser) -> HTMLResponse:
    return render(request, "home.html", {"overview": overview_for(db, user)}, user=user)
