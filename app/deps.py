"""Typed dependencies: the session, the settings and who is asking (by cookie or token)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.db import close_session
from app.errors import AuthenticationFailed, NotFound, PermissionDenied
from app.models import Role, User, UserSession
from app.services import auth
from app.settings import Settings

SESSION_COOKIE = "smiley_session"


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    # Async: making a session does no I/O, so only closing it (which may) goes to a worker
    # thread. A sync generator would take two thread hand-offs per request.
    endpoint = request.scope.get("endpoint")
    read_only = getattr(endpoint, READ_ONLY_MARK, False)
    sessions = request.app.state.read_sessions if read_only else request.app.state.sessions
    db = sessions()
    try:
        yield db
    finally:
        # FastAPI runs this once the answer was sent (or, after an error, before the error's
        # answer): a failure here must not fail that answer (see close_session). A session
        # whose last transaction was committed holds no connection: closing it does no I/O.
        if db.in_transaction():
            # On threads of its own: a close gives a connection back, so it must never queue
            # behind requests that hold worker threads while they wait for a connection (with
            # more requests at once than the pool has connections, that wait never ended).
            await asyncio.get_running_loop().run_in_executor(_CLOSERS, close_session, db)
        else:
            db.close()


_CLOSERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="smiley-session-close")


READ_ONLY_MARK = "smiley_read_only"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def read_only(endpoint: Endpoint) -> Endpoint:
    """Marks a route that only reads, so its session (and its authentication's) runs in a
    read-only transaction: on SQLite it then reads beside a long writer instead of queueing
    for the write lock (an import holds it until it ends), e.g. to show that import's
    progress. Put it under the @router.get line."""
    setattr(endpoint, READ_ONLY_MARK, True)
    return endpoint


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

# Ids are 32-bit integer columns on PostgreSQL: a larger id in a URL names nothing, and must
# say so rather than reach the database (where it would be an overflow error, a 500).
MAX_ID = 2**31 - 1


# The router-wide checks, role checks and the token check on a cache hit do no I/O: they are
# `async def`, so FastAPI runs them on the event loop instead of handing each to a thread.


async def ids_in_range(request: Request) -> None:
    """Router-wide: an id in the path that no row can have is a 404, before any lookup."""
    for name, value in request.path_params.items():
        if not (name.endswith("_id") or name == "version"):
            continue
        try:
            number = int(value)
        except ValueError:
            continue  # not a number at all: the route's own validation says so
        if not -MAX_ID - 1 <= number <= MAX_ID:
            if name == "version":
                raise NotFound(f"no version {number}")
            raise NotFound(f"no {name.removesuffix('_id').replace('_', ' ')} with id {number}")


async def known_query_parameters(request: Request) -> None:
    """Router-wide: a query parameter the route does not take is a 422, not silently ignored.
    A misspelt filter (`?queue=3` for `?queue_id=3`) would otherwise answer as if it were
    absent, and `?order_by=password_hash` would look accepted."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _query_parameter_names(route))
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "unknown_query_parameter",
                    "loc": ("query", name),
                    "msg": "this route takes no such query parameter",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def _query_parameter_names(route: APIRoute) -> frozenset[str]:
    # Kept on the route: a route's dependant (and so these names) never changes after startup.
    names: frozenset[str] | None = getattr(route, "smiley_query_names", None)
    if names is None:
        found: set[str] = set()
        pending = [route.dependant]
        while pending:
            dependant = pending.pop()
            found.update(param.alias for param in dependant.query_params)
            pending.extend(dependant.dependencies)
        names = frozenset(found)
        route.smiley_query_names = names  # type: ignore[attr-defined]
    return names


SessionDep = Annotated[Session, Depends(get_db)]


class LoginRequired(Exception):
    """Raised by page dependencies; the web error handler redirects to /login."""


class PasswordChangeRequired(Exception):
    """The user logs in with a password somebody else chose; the page handler redirects."""


def get_web_login(request: Request, db: SessionDep) -> tuple[UserSession, User] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = auth.resolve_session(db, token)
    if found is not None:
        request.state.csrf_token = found[0].csrf_token
        # For the access log line (app/observability/middleware.py).
        request.state.user_id = found[1].id
    return found


WebLogin = Annotated[tuple[UserSession, User] | None, Depends(get_web_login)]


async def get_web_user_any(login: WebLogin) -> User:
    """The logged-in user, even one who must still change a generated password."""
    if login is None:
        raise LoginRequired()
    return login[1]


async def get_web_user(user: Annotated[User, Depends(get_web_user_any)]) -> User:
    if user.must_change_password:
        raise PasswordChangeRequired()
    return user


WebUserAnyState = Annotated[User, Depends(get_web_user_any)]
WebUser = Annotated[User, Depends(get_web_user)]


def _role_check(*roles: Role) -> Callable[[User], User]:
    def check(user: User) -> User:
        if user.role not in roles:
            raise PermissionDenied(
                "this needs the " + " or ".join(role.value for role in roles) + " role"
            )
        return user

    return check


def web_role(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    check = _role_check(*roles)

    async def dependency(user: WebUser) -> User:
        return check(user)

    return dependency


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("send an API token as 'Authorization: Bearer <token>'")
    return token.strip()


def _api_user_or_refuse(request: Request, user: User | None) -> User:
    if user is None:
        raise AuthenticationFailed(
            "the API token is unknown, revoked, expired or its user inactive"
        )
    request.state.user_id = user.id
    return user


def get_api_user_sync(request: Request, db: Session) -> User:
    token = _bearer_token(request)
    seconds = request.app.state.settings.api_token_cache_seconds
    return _api_user_or_refuse(request, auth.token_cache.resolve(db, token, seconds))


async def get_api_user(request: Request, db: SessionDep) -> User:
    """The token's user: from this process's token cache on the event loop when it holds the
    token, otherwise checked against the database on a worker thread."""
    token = _bearer_token(request)
    seconds = request.app.state.settings.api_token_cache_seconds
    user = auth.token_cache.cached(db, token) if seconds > 0 else None
    if user is None:
        user = await run_in_threadpool(_check_token, db, token, seconds)
    return _api_user_or_refuse(request, user)


def _check_token(db: Session, token: str, seconds: float) -> User | None:
    user = auth.token_cache.resolve(db, token, seconds)
    # The connection goes back to the pool before the route waits for a worker thread of its
    # own: held across that wait, 500 labelers' first requests at once took every connection
    # while the threads that would give them back waited for one.
    if db.in_transaction():
        db.commit()
    return user


ApiUser = Annotated[User, Depends(get_api_user)]


def get_caller(request: Request, db: SessionDep) -> User | None:
    """Who asks a route that both scripts and browsers read (the schema, /healthz, /metrics):
    a token when one is sent (a wrong token is refused, not tried as a cookie), otherwise the
    browser session; None when neither names a user."""
    if request.headers.get("authorization"):
        return get_api_user_sync(request, db)
    token = request.cookies.get(SESSION_COOKIE)
    found = auth.resolve_session(db, token) if token else None
    if found is None:
        return None
    request.state.user_id = found[1].id
    return found[1]


OptionalCaller = Annotated[User | None, Depends(get_caller)]


def get_signed_in_caller(caller: OptionalCaller) -> User:
    if caller is None:
        raise AuthenticationFailed(
            "log in, or send an API token as 'Authorization: Bearer <token>'"
        )
    return caller


SignedInCaller = Annotated[User, Depends(get_signed_in_caller)]


def api_role(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    check = _role_check(*roles)

    async def dependency(user: ApiUser) -> User:
        return check(user)

    return dependency


WebAdmin = Annotated[User, Depends(web_role(Role.admin))]
WebStaff = Annotated[User, Depends(web_role(Role.admin, Role.researcher))]
ApiAdmin = Annotated[User, Depends(api_role(Role.admin))]
ApiStaff = Annotated[User, Depends(api_role(Role.admin, Role.researcher))]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
