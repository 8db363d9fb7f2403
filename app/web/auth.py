"""Login and logout pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from app.deps import SESSION_COOKIE, SessionDep, SettingsDep, WebLogin, client_ip
from app.errors import AuthenticationFailed, InvalidInput, RateLimited
from app.schemas import common
from app.services import auth
from app.web.csrf import ANON_COOKIE, anonymous_token, set_anonymous_cookie
from app.web.rendering import redirect, render

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would make login an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(
    request: Request,
    *,
    next_url: str,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    token = anonymous_token(request)
    request.state.csrf_token = token
    response = render(
        request,
        "login.html",
        {"next": next_url, "username": username, "error": error},
        status_code=status_code,
        no_store=True,
    )
    set_anonymous_cookie(request, response, token)
    return response


@router.get("/login")
def login_form(request: Request, login: WebLogin, next: common.Text | None = None) -> Response:
    if login is not None:
        return redirect(request, _safe_next(next))
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[common.Text, Form(max_length=2000)] = "/",
) -> Response:
    next_url = _safe_next(next)
    try:
        user = auth.authenticate(
            db, settings, username=username, password=password, client_ip=client_ip(request)
        )
    except (AuthenticationFailed, RateLimited, InvalidInput) as error:
        response = _login_page(
            request,
            next_url=next_url,
            # Not an unstorable name back into the form: the person types it again.
            username="" if isinstance(error, InvalidInput) else username,
            error=error.message,
            status_code=error.status_code,
        )
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    new = auth.start_session(
        db,
        settings,
        user,
        client_ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    target = "/account/password" if user.must_change_password else next_url
    response = redirect(request, target)
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    response.delete_cookie(ANON_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, db: SessionDep, login: WebLogin) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.end_session(db, token)
    response = redirect(request, "/login", notice="You are logged out." if login else None)
    response.delete_cookie(SESSION_COOKIE)
    return response
