"""GET /metrics: the Prometheus text exposition, for admins only (an admin API token, as
Prometheus sends with `authorization: {credentials: <token>}`, or an admin's browser session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.deps import OptionalCaller, SessionDep, SettingsDep, read_only
from app.errors import AuthenticationFailed, PermissionDenied
from app.models import Role, User
from app.observability.metrics import exposition

router = APIRouter(include_in_schema=False)


def metrics_reader(caller: OptionalCaller) -> User:
    """A token when one is sent, otherwise the browser session; either way an admin."""
    if caller is None:
        raise AuthenticationFailed("log in as an admin or send an admin's API token")
    if caller.role != Role.admin:
        raise PermissionDenied("metrics need the admin role")
    return caller


@router.get("/metrics")
@read_only
def metrics(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    _: Annotated[User, Depends(metrics_reader)],
) -> Response:
    body = exposition(request.app.state.http_metrics, db, settings)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
