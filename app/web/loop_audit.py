"""The reward model audit page (its figures, the disagreements, queueing them for another look
and launching a score run) and a response's lineage page. Admins and researchers only: a
labeler must never see where a response came from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.deps import SessionDep, SettingsDep, WebStaff
from app.errors import DomainError, InvalidInput
from app.models import Queue, QueueKind, User
from app.schemas import common
from app.schemas.audit import PairRef
from app.services import audit, lineage
from app.services.projects import get_project
from app.web.rendering import redirect, render

router = APIRouter()

SCOPES = ("selected", "all")


def _audit_page(
    request: Request,
    db: Session,
    user: User,
    project_id: int,
    reward_model_id: int,
    *,
    limit: int = audit.DEFAULT_LIMIT,
    error: DomainError | None = None,
) -> Response:
    project = get_project(db, project_id)
    found = audit.reward_audit(db, project_id, reward_model_id, limit=limit)
    queues = db.execute(
        select(Queue.id, Queue.name)
        .where(Queue.project_id == project_id, Queue.kind == QueueKind.comparison)
        .order_by(Queue.name, Queue.id)
    ).all()
    return render(
        request,
        "audit/audit.html",
        {
            "project": project,
            "audit": found,
            "queues": queues,
            "limit": limit,
            "error": error.message if error else None,
        },
        user=user,
        status_code=error.status_code if error else 200,
    )


@router.get("/projects/{project_id}/models/{reward_model_id}/audit")
def audit_page(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    reward_model_id: int,
    limit: Annotated[int, Query(ge=1, le=10_000)] = audit.DEFAULT_LIMIT,
) -> Response:
    return _audit_page(request, db, user, project_id, reward_model_id, limit=limit)


def parsed_pairs(values: list[str]) -> list[PairRef]:
    """Checkbox values "winner-loser" as pairs."""
    pairs = []
    for value in values:
        winner, _, loser = value.partition("-")
        if not (winner.isdigit() and loser.isdigit()):
            raise InvalidInput(f"{value[:40]!r} does not name a response pair", field="pair")
        pairs.append(PairRef(winner_response_id=int(winner), loser_response_id=int(loser)))
    return pairs


@router.post("/projects/{project_id}/models/{reward_model_id}/audit/requeue")
def requeue_pairs(
    request: Request,
    db: SessionDep,
    user: WebStaff,
    project_id: int,
    reward_model_id: int,
    queue_id: Annotated[common.Text, Form(max_length=20)] = "",
    scope: Annotated[common.Text, Form(max_length=20)] = "selected",
    pair: Annotated[list[common.Text] | None, Form()] = None,
) -> Response:
    try:
        if not queue_id.strip().isdigit():
            raise InvalidInput("choose the comparison queue for the pairs", field="queue_id")
        if scope not in SCOPES:
            raise InvalidInput("scope must be selected or all", field="scope")
        pairs = None
        if scope == "selected":
            pairs = parsed_pairs(pair or [])
            if not pairs:
                raise InvalidInput("tick at least one pair, or queue all of them", field="pair")
        done = audit.queue_audit_pairs(
            db, project_id, reward_model_id, int(queue_id), pairs, acting=user
        )
    except DomainError as error:
        return _audit_page(request, db, user, project_id, reward_model_id, error=error)
    return redirect(
        request,
        f"/projects/{project_id}/models/{reward_model_id}/audit",
        notice=f"Queued {done.created} pairs for another look; "
        f"{done.skipped} already had a task in that queue.",
    )


@router.post("/projects/{project_id}/models/{reward_model_id}/audit/score")
def launch_score_run(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebStaff,
    project_id: int,
    reward_model_id: int,
) -> Response:
    try:
        run = audit.launch_score_run(db, settings, project_id, reward_model_id, acting=user)
    except DomainError as error:
        return _audit_page(request, db, user, project_id, reward_model_id, error=error)
    return redirect(
        request, f"/runs/{run.id}", notice=f"Queued score run {run.id} of this reward model."
    )


@router.get("/responses/{response_id}/lineage")
def lineage_page(
    request: Request, db: SessionDep, settings: SettingsDep, user: WebStaff, response_id: int
) -> Response:
    found = lineage.response_lineage(db, settings, response_id)
    return render(
        request,
        "audit/lineage.html",
        {"lineage": found, "project": get_project(db, found.project_id)},
        user=user,
    )
