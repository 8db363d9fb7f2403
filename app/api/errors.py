"""Domain errors and bad requests as JSON: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.errors import AuthenticationFailed, DomainError, RateLimited


def error_body(
    code: str, message: str, *, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    # "field" is always present, so clients can read every error the same way.
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def domain_error_response(error: DomainError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(
        error_body(error.code, error.message, field=error.field),
        status_code=error.status_code,
        headers=headers,
    )


def validation_error_response(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = [
        {
            "location": ".".join(str(part) for part in problem["loc"]),
            "message": problem["msg"],
            "type": problem["type"],
        }
        for problem in error.errors()
    ]
    field = None
    if any(problem["type"] == "json_invalid" for problem in problems):
        message = "the request body is not valid JSON"
    else:
        message = "; ".join(f"{p['location']}: {p['message']}" for p in problems)
        # The one field at fault, without its source ("body.username" -> "username").
        fields = {".".join(str(part) for part in problem["loc"][1:]) for problem in error.errors()}
        if len(fields) == 1:
            field = fields.pop() or None
    return JSONResponse(
        error_body("invalid_request", message, field=field, problems=problems), status_code=422
    )
