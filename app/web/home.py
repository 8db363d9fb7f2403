"""The role-aware home page; a labeler's lists the queues they may work on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.deps import SessionDep, WebUser
from app.models import Role
from app.services.overview import labeler_queues, overview_for
from app.services.reviews import rejected_labels_of
from app.web.rendering import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: SessionDep, user: WebUser) -> HTMLResponse:
    context = {
        "overview": overview_for(db, user),
        "work": labeler_queues(db, user) if user.role == Role.labeler else [],
        "rejected": rejected_labels_of(db, user.id),
    }
    return render(request, "home.html", context, user=user)
