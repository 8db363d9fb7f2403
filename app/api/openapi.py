"""GET /api/v1/openapi.json: the API's schema, for signed-in users (token or browser session).

FastAPI's own schema route is turned off (app/main.py) because it answers anyone: the schema
maps every route and field of the API, which is nobody's business before they sign in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.deps import SignedInCaller, read_only

OPENAPI_URL = "/api/v1/openapi.json"

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
@read_only
def openapi_schema(request: Request, _: SignedInCaller) -> JSONResponse:
    return JSONResponse(request.app.openapi())
