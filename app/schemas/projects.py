"""Request and response shapes for projects and their label schema."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.schemas.common import Text

FLAG_KEY = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class Flag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Text
    label: Text = Field(min_length=1, max_length=120)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not FLAG_KEY.match(value):
            raise ValueError(
                "a flag key is lower-case letters, digits and '_', starting with a letter"
            )
        return value


# InstructGPT's labeling interface, as listed in DESIGN.md.
DEFAULT_FLAGS: tuple[Flag, ...] = tuple(
    Flag(key=key, label=label)
    for key, label in (
        ("fails_instruction", "Fails to follow the instruction"),
        ("hallucination", "Hallucination / made-up facts"),
        ("inappropriate", "Inappropriate for a customer assistant"),
        ("harmful_advice", "Harmful or dangerous advice"),
        ("sexual", "Sexual content"),
        ("violent", "Violent content"),
        ("hateful", "Hateful or discriminatory content"),
        ("private_information", "Contains private information"),
        ("unnecessary_refusal", "Unnecessary refusal"),
        ("other", "Other (with text)"),
    )
)


CENT = Decimal("0.01")


def _to_cents(value: Decimal | None) -> Decimal | None:
    # Always two places (and never "-0.00"), as the Numeric(12, 2) column gives it back.
    return None if value is None else abs(value).quantize(CENT)


# What one label costs, in any one currency; None: not set. JSON carries it as a string.
Cost = Annotated[
    Decimal | None,
    Field(ge=0, max_digits=12, decimal_places=2, examples=["0.35"]),
    AfterValidator(_to_cents),
]


def _unique_flags(flags: list[Flag]) -> list[Flag]:
    keys = [flag.key for flag in flags]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"flag keys must be unique; repeated: {', '.join(duplicates)}")
    return flags


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=20_000)
    flags: list[Flag] = Field(default_factory=lambda: list(DEFAULT_FLAGS), max_length=50)
    cost_per_demonstration: Cost = None
    cost_per_comparison: Cost = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a project needs a name")
        return value

    _flags = field_validator("flags")(classmethod(lambda cls, v: _unique_flags(v)))


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=20_000)
    flags: list[Flag] | None = Field(default=None, max_length=50)
    is_archived: bool | None = None
    # Unlike the fields above, an explicit null here clears the cost; leaving it out keeps it.
    cost_per_demonstration: Cost = None
    cost_per_comparison: Cost = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a project needs a name")
        return None if value is None else value.strip()

    @field_validator("flags")
    @classmethod
    def _flags(cls, value: list[Flag] | None) -> list[Flag] | None:
        return None if value is None else _unique_flags(value)


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    flags: list[Flag]
    is_archived: bool
    cost_per_demonstration: Decimal | None
    cost_per_comparison: Decimal | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, project: Any) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            description=project.description,
            flags=[Flag(**flag) for flag in project.label_schema.get("flags", [])],
            is_archived=project.is_archived,
            cost_per_demonstration=project.cost_per_demonstration,
            cost_per_comparison=project.cost_per_comparison,
            created_at=project.created_at,
            updated_at=project.updated_at,
        )
