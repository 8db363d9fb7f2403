"""Field types shared by request schemas.

`Text` is for any text a person types. Two kinds of string pass Python and JSON but not the
database: a NUL byte (PostgreSQL's text and JSONB refuse \\u0000) and a lone UTF-16 surrogate
(not encodable as UTF-8, so SQLite's driver and PostgreSQL's both fail on it). Refusing both
at the edge makes a bad request a clear 422 on every backend, never a 500 on one of them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator

NUL_MESSAGE = "text may not contain NUL bytes"
SURROGATE_MESSAGE = "text contains invalid unicode (a lone surrogate)"
NON_FINITE_MESSAGE = "numbers must be finite (no NaN or Infinity)"

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why the database would refuse `value`, or None when it is fine."""
    if "\x00" in value:
        return NUL_MESSAGE
    if _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    return None


def _storable(value: Any) -> Any:
    # Before pydantic's own string check, which refuses a lone surrogate with a message about
    # "raw data" that tells a person nothing.
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValueError(problem)
    return value


Text = Annotated[str, BeforeValidator(_storable)]


def json_problem(value: Any) -> str | None:
    """The first reason a JSON value (dicts, lists, strings, numbers) cannot be stored as JSON
    on both backends: bad text in a key or string, or a NaN/Infinity (JSONB refuses them)."""
    # Iterative, so a deeply nested value cannot exhaust the interpreter's stack.
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, float):
            problem = None if math.isfinite(item) else NON_FINITE_MESSAGE
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
            problem = None
        elif isinstance(item, list | tuple):
            pending.extend(item)
            problem = None
        else:
            problem = None
        if problem:
            return problem
    return None
