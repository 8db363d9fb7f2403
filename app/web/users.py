"""Admin user management pages: create, change role, (de)activate, reset password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.deps import SessionDep, WebAdmin
from app.errors import DomainError, InvalidInput
from app.models import Role, User
from app.schemas import common
from app.schemas.users import UserCreate, UserUpdate
from app.services import users
from app.web.rendering import form_errors, redirect, render

router = APIRouter(prefix="/admin/users")


def _page(
    request: Request,
    db: SessionDep,
    admin: User,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "admin/users.html",
        {
            "users": users.list_users(db),
            "roles": list(Role),
            "errors": errors or {},
            "values": values or {},
        },
        user=admin,
        status_code=status_code,
    )


@router.get("")
def list_users(request: Request, db: SessionDep, admin: WebAdmin) -> Response:
    return _page(request, db, admin)


@router.post("")
def create_user(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    username: Annotated[common.Text, Form(max_length=256)] = "",
    display_name: Annotated[common.Text, Form(max_length=256)] = "",
    role: Annotated[common.Text, Form(max_length=32)] = Role.labeler.value,
    password: Annotated[common.Text, Form(max_length=512)] = "",
) -> Response:
    values = {"username": username, "display_name": display_name, "role": role}
    try:
        data = UserCreate(
            username=username, display_name=display_name, role=role, password=password or None
        )
        created, generated = users.create_user(db, data)
    except (ValidationError, DomainError) as error:
        status = error.status_code if isinstance(error, DomainError) else 422
        return _page(
            request, db, admin, errors=form_errors(error), values=values, status_code=status
        )
    if generated is None:
        return redirect(request, "/admin/users", notice=f"Created {created.username}.")
    return render(
        request,
        "admin/password_once.html",
        {"subject": created, "password": generated, "created": True},
        user=admin,
        status_code=201,
        no_store=True,
    )


def _row_or_redirect(request: Request, changed: User, admin: User, notice: str) -> Response:
    if request.headers.get("hx-request"):
        return render(
            request,
            "admin/users.html",
            {"u": changed, "roles": list(Role), "row_notice": notice},
            block="user_row",
            user=admin,
        )
    return redirect(request, "/admin/users", notice=notice)


def _update(
    request: Request, db: SessionDep, admin: User, user_id: int, data: UserUpdate, notice: str
) -> Response:
    changed = users.update_user(db, user_id, data, acting=admin)
    return _row_or_redirect(request, changed, admin, notice.format(name=changed.username))


@router.post("/{user_id}/role")
def change_role(
    request: Request,
    db: SessionDep,
    admin: WebAdmin,
    user_id: int,
    role: Annotated[common.Text, Form(max_length=32)],
) -> Response:
    try:
        data = UserUpdate(role=role)
    except ValidationError as error:
        raise InvalidInput(f"unknown role {role!r}", field="role") from error
    return _update(request, db, admin, user_id, data, f"{{name}} is now {role}.")


@router.post("/{user_id}/deactivate")
def deactivate(request: Request, db: SessionDep, admin: WebAdmin, user_id: int) -> Response:
    return _update(
        request, db, admin, user_id, UserUpdate(is_active=False), "{name} is deactivated."
    )


@router.post("/{user_id}/activate")
def activate(request: Request, db: SessionDep, admin: WebAdmin, user_id: int) -> Response:
    return _update(request, db, admin, user_id, UserUpdate(is_active=True), "{name} is active.")


@router.post("/{user_id}/reset-password")
def reset_password(request: Request, db: SessionDep, admin: WebAdmin, user_id: int) -> Response:
    subject, temporary = users.reset_password(db, user_id)
    return render(
        request,
        "admin/password_once.html",
        {"subject": subject, "password": temporary, "created": False},
        user=admin,
        no_store=True,
    )
