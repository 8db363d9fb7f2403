"""/api/v1/users: admin user management."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, SessionDep
from app.schemas.users import PasswordReset, UserCreate, UserCreated, UserOut, UserUpdate
from app.services import users

router = APIRouter(responses=STANDARD_ERRORS, prefix="/users", tags=["users"])


@router.get("", response_model=list[UserOut])
def list_users(db: SessionDep, _: ApiAdmin) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in users.list_users(db)]


@router.post("", response_model=UserCreated, status_code=status.HTTP_201_CREATED)
def create_user(data: UserCreate, db: SessionDep, _: ApiAdmin) -> UserCreated:
    user, generated = users.create_user(db, data)
    return UserCreated(user=UserOut.model_validate(user), generated_password=generated)


@router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: int, db: SessionDep, _: ApiAdmin) -> UserOut:
    return UserOut.model_validate(users.get_user(db, user_id))


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: int, data: UserUpdate, db: SessionDep, admin: ApiAdmin) -> UserOut:
    return UserOut.model_validate(users.update_user(db, user_id, data, acting=admin))


@router.post("/{user_id}/reset-password", response_model=PasswordReset)
def reset_password(user_id: int, db: SessionDep, _: ApiAdmin) -> PasswordReset:
    user, temporary = users.reset_password(db, user_id)
    return PasswordReset(user=UserOut.model_validate(user), temporary_password=temporary)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: int, db: SessionDep, admin: ApiAdmin) -> None:
    users.delete_user(db, user_id, acting=admin)
