"""GET /healthz: database, broker and worker, for load balancers and for admins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import OptionalCaller, SessionDep, SettingsDep, read_only
from app.models import Role
from app.services.health import health

router = APIRouter(tags=["health"])


@router.get("/healthz")
@read_only
def healthz(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: OptionalCaller,
    probe: bool = False,
) -> JSONResponse:
    """200 when all are ok, else 503, whoever asks. Only an admin (token or browser session)
    gets each check's detail; anyone else gets `{"status": ...}` alone, since the details name
    the data folder, the broker's host and the workers' host names. `probe=true` also sends a
    task through the broker."""
    result = health(request.app.state.engine, db, settings, probe=probe)
    is_admin = caller is not None and caller.role == Role.admin
    body = result.as_dict() if is_admin else {"status": result.status}
    return JSONResponse(body, status_code=200 if result.ok else 503)
