"""A user's own account: change password, manage API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, SettingsDep, WebLogin, WebUser, WebUserAnyState, client_ip
from app.errors import DomainError, InvalidInput
from app.models import User
from app.schemas import common
from app.schemas.users import PasswordChange, TokenCreate
from app.services import auth, users
from app.web.rendering import form_errors, redirect, render

router = APIRouter(prefix="/account")


@router.get("/password")
def password_form(request: Request, user: WebUserAnyState) -> Response:
    return render(request, "account/password.html", {"errors": {}}, user=user)


@router.post("/password")
def change_password(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    user: WebUserAnyState,
    login: WebLogin,
    current_password: Annotated[common.Text, Form(max_length=512)] = "",
    new_password: Annotated[common.Text, Form(max_length=512)] = "",
    confirm_password: Annotated[common.Text, Form(max_length=512)] = "",
) -> Response:
    try:
        if new_password != confirm_password:
            raise InvalidInput("the two new passwords differ", field="confirm_password")
        data = PasswordChange(current_password=current_password, new_password=new_password)
        # This browser stays logged in; every other session of the user ends.
        users.change_password(
            db,
            settings,
            user,
            data,
            client_ip=client_ip(request),
            keep_session_id=login[0].id if login else None,
        )
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return render(
            request,
            "account/password.html",
            {"errors": form_errors(error)},
            user=user,
            status_code=status,
        )
    return redirect(request, "/", notice="Your password is changed.")


def _tokens_page(
    request: Request,
    db: SessionDep,
    user: User,
    *,
    new_token: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "account/tokens.html",
        {"tokens": auth.list_api_tokens(db, user), "new_token": new_token, "errors": errors or {}},
        user=user,
        status_code=status_code,
        no_store=new_token is not None,
    )


@router.get("/tokens")
def tokens(request: Request, db: SessionDep, user: WebUser) -> Response:
    return _tokens_page(request, db, user)


@router.post("/tokens")
def create_token(
    request: Request,
    db: SessionDep,
    user: WebUser,
    name: Annotated[common.Text, Form(max_length=1000)] = "",
    expires_in_days: Annotated[common.Text, Form(max_length=10)] = "",
) -> Response:
    try:
        data = TokenCreate(name=name, expires_in_days=expires_in_days or None)
    except ValidationError as error:
        return _tokens_page(request, db, user, errors=form_errors(error), status_code=422)
    _, token = auth.create_api_token(db, user, data)
    return _tokens_page(request, db, user, new_token=token, status_code=201)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(request: Request, db: SessionDep, user: WebUser, token_id: int) -> Response:
    record = auth.revoke_api_token(db, user, token_id)
    return redirect(request, "/account/tokens", notice=f"Revoked {record.name}.")
