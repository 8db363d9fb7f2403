"""Every text the app takes in is `Text` (app/schemas/common.py), so a NUL byte or a lone
surrogate is a 422 naming the field on both databases, never a 500 on one of them.

Walks every route (query, path, header, cookie, body and form parameters, into pydantic models
and containers) and every request schema (the models that forbid extra fields, which includes
those a route or service validates by hand: an import's fields, each run kind's
hyperparameters, a profile). A plain `str` anywhere there fails, naming where it is."""

from __future__ import annotations

import enum
import importlib
import pkgutil
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy import create_engine

import app.schemas
from app.main import create_app
from app.schemas.common import Text
from app.settings import Settings

# The BeforeValidator that makes a str a Text; nested Annotated keeps this very object.
TEXT_CHECK = get_args(Text)[1]

# Plain str inputs that are checked another way, with why.
EXEMPT = {
    # auth.authenticate refuses both (422 naming the field) before any query, so the login
    # page comes back with the message and the form instead of the bare error page.
    "POST /login form username",
    "POST /login form password",
}

PARAMETER_KINDS = {
    "query_params": "query",
    "path_params": "path",
    "header_params": "header",
    "cookie_params": "cookie",
    "body_params": "form",
}


def plain_strings(annotation: Any, where: str, metadata: tuple[Any, ...] = ()) -> list[str]:
    """Where `annotation` (with its Annotated `metadata`) lets a str in without Text's check."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return plain_strings(inner, where, (*metadata, *extra))
    if annotation is str:
        return [] if any(item is TEXT_CHECK for item in metadata) else [where]
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, enum.Enum)):
        return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strings(annotation)
    if origin in (Union, types.UnionType):
        return [
            found for arm in get_args(annotation) for found in plain_strings(arm, where, metadata)
        ]
    if origin is dict:
        key, value = get_args(annotation)
        return plain_strings(key, f"{where} (key)") + plain_strings(value, f"{where}[]")
    if origin is not None:
        # list, set, tuple, Sequence...: each item type.
        return [
            found
            for arm in get_args(annotation)
            if arm is not Ellipsis
            for found in plain_strings(arm, f"{where}[]")
        ]
    return []


def model_strings(model: type[BaseModel]) -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        found += plain_strings(field.annotation, f"{model.__name__}.{name}", tuple(field.metadata))
    return found


def dependant_strings(dependant: Dependant, route: str) -> list[str]:
    found = []
    for attribute, kind in PARAMETER_KINDS.items():
        for param in getattr(dependant, attribute):
            info = param.field_info
            where = f"{route} {kind} {param.name}"
            found += plain_strings(info.annotation, where, tuple(info.metadata))
    for sub in dependant.dependencies:
        found += dependant_strings(sub, route)
    return found


def route_strings() -> tuple[int, list[str]]:
    """(routes walked, plain str inputs found) for the whole app."""
    app = create_app(
        Settings(data_dir=Path("/nonexistent"), secret_key="text-fields-" + "x" * 32),
        create_engine("sqlite://"),
    )
    routes = [
        each
        for each in iter_route_contexts(app.routes)
        if isinstance(each.original_route, APIRoute)
    ]
    found = []
    for each in routes:
        for method in sorted(each.methods or ()):
            found += dependant_strings(each.dependant, f"{method} {each.path}")
    return len(routes), found


def request_schemas() -> list[type[BaseModel]]:
    """Every model in app/schemas that forbids extra fields: what requests are read into."""
    found = []
    for module_info in pkgutil.iter_modules(app.schemas.__path__):
        module = importlib.import_module(f"app.schemas.{module_info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
                and value.model_config.get("extra") == "forbid"
            ):
                found.append(value)
    return found


def test_every_route_input_is_text() -> None:
    walked, found = route_strings()

    assert walked > 150
    assert sorted(set(found) - EXEMPT) == []
    # An exemption that no longer matches anything is stale: drop it.
    assert EXEMPT - set(found) == set()


def test_every_request_schema_field_is_text() -> None:
    schemas = request_schemas()

    assert len(schemas) > 30
    assert sorted({where for schema in schemas for where in model_strings(schema)}) == []


class _Forgotten(BaseModel):
    ok: Text
    name: str
    tags: list[Annotated[str, Field(max_length=5)]]
    labels: dict[str, Text] | None
    choice: Literal["a", "b"]


def test_the_walk_finds_a_plain_str_wherever_it_hides() -> None:
    assert model_strings(_Forgotten) == [
        "_Forgotten.name",
        "_Forgotten.tags[]",
        "_Forgotten.labels (key)",
    ]
