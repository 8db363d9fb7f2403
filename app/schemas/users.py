"""Request and response shapes for users, logins and API tokens."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.models.users import Role
from app.schemas.common import Text

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def normalise_username(value: str) -> str:
    value = value.strip().lower()
    if not USERNAME_PATTERN.match(value):
        raise ValueError(
            "a username is 2-64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_password(value: str) -> str:
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return value


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text
    role: Role = Role.labeler
    display_name: Text = Field(default="", max_length=128)
    password: Text | None = Field(
        default=None,
        description="Leave out to have one generated; it is returned once and must be changed.",
    )

    _username = field_validator("username")(classmethod(lambda cls, v: normalise_username(v)))

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else check_password(value)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    display_name: Text | None = Field(default=None, max_length=128)
    is_active: bool | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Text
    new_password: Text

    _new = field_validator("new_password")(classmethod(lambda cls, v: check_password(v)))


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    is_active: bool
    must_change_password: bool
    created_at: datetime


class UserCreated(BaseModel):
    user: UserOut
    generated_password: str | None = Field(
        description="Only when no password was given; shown this once."
    )


class PasswordReset(BaseModel):
    user: UserOut
    temporary_password: str


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text = Field(max_length=256)
    password: Text = Field(max_length=MAX_PASSWORD_LENGTH)


class TokenLoginRequest(LoginRequest):
    token_name: Text = Field(default="script", min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    token: str = Field(description="The Bearer token; shown this once, stored only as a hash.")
    info: TokenOut
