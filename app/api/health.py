"""GET /healthz: database, broker and worker, for people and for load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import SessionDep, SettingsDep, read_only
from app.services.health import health

router = APIRouter(tags=["health"])


@router.get("/healthz")
@read_only
def healthz(
    request: Request, db: SessionDep, settings: SettingsDep, probe: bool = False
) -> JSONResponse:
    """200 when all are ok, else 503. `probe=true` also sends a task through the broker."""
    result = health(request.app.state.engine, db, settings, probe=probe)
    return JSONResponse(result.as_dict(), status_code=200 if result.ok else 503)
