"""CSRF protection for every unsafe request to the web app.

Logged in: the form (or htmx's X-CSRF-Token header) must carry the session's token.
Logged out (the login form): a signed double-submit cookie, so login CSRF fails too."""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from app.deps import SESSION_COOKIE, LoginRequired, SettingsDep, WebLogin
from app.errors import CsrfFailed
from app.security import constant_time_equal, sign

ANON_COOKIE = "smiley_csrf"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _valid_anon_token(value: str | None, secret: str) -> bool:
    if not value or "." not in value:
        return False
    nonce, signature = value.rsplit(".", 1)
    return constant_time_equal(signature, sign(secret, nonce))


def anonymous_token(request: Request) -> str:
    """The logged-out visitor's token: theirs when validly signed, else a new one."""
    secret = request.app.state.settings.resolved_secret_key
    current = request.cookies.get(ANON_COOKIE)
    if current is not None and _valid_anon_token(current, secret):
        return current
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{sign(secret, nonce)}"


def set_anonymous_cookie(request: Request, response: Response, token: str) -> None:
    if request.cookies.get(ANON_COOKIE) == token:
        return
    response.set_cookie(
        ANON_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.cookie_secure,
    )


async def verify_csrf(request: Request, login: WebLogin, settings: SettingsDep) -> None:
    if request.method in SAFE_METHODS:
        return
    if login is None and request.url.path == "/logout":
        # Logging out without a live session changes nothing, so there is nothing to forge;
        # refusing it would strand a user whose session expired on a 403 page.
        return
    if login is None and request.cookies.get(SESSION_COOKIE) and request.url.path != "/login":
        # A form posted from a page whose session has since expired: the token cannot match
        # any more, and the honest answer is "log in again", not "forged request".
        raise LoginRequired()
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if login is not None:
        expected: str | None = login[0].csrf_token
    else:
        cookie = request.cookies.get(ANON_COOKIE)
        expected = cookie if _valid_anon_token(cookie, settings.resolved_secret_key) else None
    if not sent or not expected or not constant_time_equal(sent, expected):
        raise CsrfFailed(
            "the form's security token is missing or stale; reload the page and try again"
        )
