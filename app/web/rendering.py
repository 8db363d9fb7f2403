"""Page rendering: templates with the current user, CSRF token and a one-shot notice."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2_fragments.fastapi import Jinja2Blocks

from app.security import constant_time_equal, sign
from app.web.bidi import BidiIsolation
from app.web.markdown import markdown_filter
from app.web.project_tabs import project_tabs

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
NOTICE_COOKIE = "smiley_notice"

# BidiIsolation: untrusted text printed into a page cannot reorder the text after it
# (app/web/bidi.py).
templates = Jinja2Blocks(directory=str(TEMPLATES_DIR))
templates.env.add_extension(BidiIsolation)
# `{{ text|markdown }}`: untrusted markdown as sanitized HTML (app/web/markdown.py). Put it inside
# an hx-disable container; templates/partials/untrusted.html has macros that do.
templates.env.filters["markdown"] = markdown_filter
# The tabs of a project's pages (app/web/project_tabs.py), drawn by partials/project_tabs.html.
templates.env.globals["project_tabs"] = project_tabs


def _secret(request: Request) -> str:
    return request.app.state.settings.resolved_secret_key


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
    user: Any = None,
    no_store: bool = False,
) -> HTMLResponse:
    notice = read_notice(request)
    values = {
        "request": request,
        "current_user": user,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "notice": notice,
        **(context or {}),
    }
    response = templates.TemplateResponse(
        request, name, values, status_code=status_code, block_name=block
    )
    # A page chosen by HX-Request must not be served from a cache to the other kind of request.
    response.headers["Vary"] = "HX-Request"
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    if notice is not None:
        response.delete_cookie(NOTICE_COOKIE, path="/")
    return response


def redirect(request: Request, url: str, *, notice: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if notice:
        payload = base64.urlsafe_b64encode(notice.encode()).decode()
        settings = request.app.state.settings
        response.set_cookie(
            NOTICE_COOKIE,
            f"{payload}.{sign(_secret(request), payload)}",
            max_age=60,
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
            path="/",
        )
    return response


def read_notice(request: Request) -> str | None:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw or "." not in raw:
        return None
    payload, signature = raw.rsplit(".", 1)
    if not constant_time_equal(signature, sign(_secret(request), payload)):
        return None
    try:
        return base64.urlsafe_b64decode(payload.encode()).decode()
    except ValueError:
        return None


def form_errors(error: Exception) -> dict[str, str]:
    """Pydantic validation errors as {field: message} for re-rendering a form."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        found: dict[str, str] = {}
        for problem in error.errors():
            location = problem["loc"]
            field = str(location[0]) if location else "form"
            message = problem["msg"].removeprefix("Value error, ")
            # A list field (one item a line, blank lines skipped) names the item at fault.
            if len(location) > 1 and isinstance(location[1], int):
                detail = f" ({location[2]})" if len(location) > 2 else ""
                message = f"item {location[1] + 1}{detail}: {message}"
            found.setdefault(field, message)
        return found
    field = getattr(error, "field", None) or "form"
    return {field: getattr(error, "message", str(error))}
