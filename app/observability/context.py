"""The id of the request being served, readable from any code that runs inside it."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from outside are echoed into headers and logs: only short, plain tokens are kept.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id_var: ContextVar[str | None] = ContextVar("smiley_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def new_request_id() -> str:
    return secrets.token_hex(16)


def accepted_request_id(incoming: str | None) -> str:
    """The caller's id when it is a sane token, otherwise a fresh one."""
    if incoming is not None and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()
