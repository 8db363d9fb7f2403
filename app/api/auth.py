"""/api/v1/me, /api/v1/tokens and /api/v1/auth/token (password -> Bearer token for scripts)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from app.api.errors import STANDARD_ERRORS, documented
from app.deps import ApiUser, SessionDep, SettingsDep, client_ip
from app.errors import PermissionDenied
from app.schemas.users import (
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenLoginRequest,
    TokenOut,
    UserOut,
)
from app.services import auth, users

router = APIRouter(responses=STANDARD_ERRORS, tags=["auth"])


@router.get("/me", response_model=UserOut)
def me(user: ApiUser) -> UserOut:
    return UserOut.model_validate(user)


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(
    data: PasswordChange, request: Request, db: SessionDep, settings: SettingsDep, user: ApiUser
) -> None:
    users.change_password(db, settings, user, data, client_ip=client_ip(request))


@router.post(
    "/auth/token",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    # Too many wrong passwords for this name or address answer 429 with Retry-After.
    responses=documented(429),
)
def token_for_password(
    data: TokenLoginRequest, request: Request, db: SessionDep, settings: SettingsDep
) -> TokenCreated:
    user = auth.authenticate(
        db, settings, username=data.username, password=data.password, client_ip=client_ip(request)
    )
    if user.must_change_password:
        raise PermissionDenied("change the generated password first (log in to the web app)")
    record, token = auth.create_api_token(
        db, user, TokenCreate(name=data.token_name, expires_in_days=data.expires_in_days)
    )
    return TokenCreated(token=token, info=TokenOut.model_validate(record))


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(db: SessionDep, user: ApiUser) -> list[TokenOut]:
    return [TokenOut.model_validate(record) for record in auth.list_api_tokens(db, user)]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(data: TokenCreate, db: SessionDep, user: ApiUser) -> TokenCreated:
    record, token = auth.create_api_token(db, user, data)
    return TokenCreated(token=token, info=TokenOut.model_validate(record))


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, db: SessionDep, user: ApiUser) -> TokenOut:
    return TokenOut.model_validate(auth.revoke_api_token(db, user, token_id))
