"""Domain errors and auth redirects as pages (or htmx redirects)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.errors import DomainError, InvalidInput, RateLimited
from app.schemas.common import NUL_MESSAGE, SURROGATE_MESSAGE
from app.web.rendering import render


def _return_to(request: Request) -> str:
    """Where to go after logging in: the page asked for, or for a POST (an htmx save or a form
    sent after the session ended) the page it was sent from, since the POST route has no page."""
    if request.method in ("GET", "HEAD"):
        target = request.url.path
        return target + "?" + request.url.query if request.url.query else target
    sent_from = request.headers.get("hx-current-url") or request.headers.get("referer") or ""
    parsed = urlsplit(sent_from)
    # Only this site's own pages: a forged header must not turn login into an open redirect.
    if parsed.netloc != request.url.netloc or not parsed.path.startswith("/"):
        return "/"
    return parsed.path + ("?" + parsed.query if parsed.query else "")


def login_redirect(request: Request) -> Response:
    target = _return_to(request)
    url = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        # htmx would swap a redirected login page into a fragment; make it navigate instead.
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def password_change_redirect(request: Request) -> Response:
    url = "/account/password"
    if request.headers.get("hx-request"):
        return Response(status_code=403, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def domain_error_page(request: Request, error: DomainError) -> HTMLResponse:
    response = render(
        request,
        "error.html",
        {"error": error, "user_for_nav": None},
        status_code=error.status_code,
    )
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def validation_error_page(request: Request, error: RequestValidationError) -> HTMLResponse:
    """A request the route's parameters refuse. Text the database cannot store (a NUL byte, a
    lone surrogate) is a 422 naming the field, as the API and the login page answer it; any
    other problem stays a 400 listing each one."""
    problems = error.errors()
    for problem in problems:
        message = str(problem.get("ctx", {}).get("error", ""))
        if message in (NUL_MESSAGE, SURROGATE_MESSAGE):
            # Without its source ("body.name" -> "name"), as a person knows the field.
            field = ".".join(str(part) for part in problem["loc"][1:])
            return domain_error_page(request, InvalidInput(f"{field}: {message}", field=field))
    listed = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
        for problem in problems
    )
    return domain_error_page(request, DomainError(f"bad request: {listed}"))


def not_found_page(request: Request, message: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"error": DomainError(message), "title": "Not found"},
        status_code=404,
    )
