"""GET /api/v1/docs: Swagger UI over the API's schema, for signed-in users.

Every file comes from this origin (static/vendor/swagger-ui, static/js/api-docs.js), so the page
works offline and under the same Content-Security-Policy as every other page. ReDoc is not
served (FastAPI's /redoc is off): Swagger UI already lists every operation and its schemas and
can call them, and a second viewer would be another megabyte of vendored code to keep current
and to prove harmless under the policy.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.openapi import OPENAPI_URL
from app.deps import WebUser
from app.web.rendering import render

DOCS_URL = "/api/v1/docs"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL, response_class=HTMLResponse)
def api_docs(request: Request, user: WebUser) -> HTMLResponse:
    return render(request, "api_docs.html", {"openapi_url": OPENAPI_URL}, user=user)
