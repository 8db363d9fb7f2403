"""Domain errors and bad requests as JSON: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

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


class ErrorDetail(BaseModel):
    """What went wrong; invalid requests also list each problem in `problems`."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None


class ErrorBody(BaseModel):
    """Every error answer of the API: {"error": {"code", "message", "field"}}."""

    error: ErrorDetail


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses a route can answer, in the shape above."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    400: "The request cannot be carried out as asked",
    401: "No valid API token",
    403: "The caller's role may not do this",
    404: "No such object",
    409: "Conflicts with the current state",
    413: "The request body or upload is too large",
    422: "The request is invalid",
    429: "Too many attempts; retry later",
    503: "A service this needs is unavailable or busy; nothing was recorded, send the same "
    "request again after the Retry-After seconds",
}
# What any route can answer: a body that is not JSON (400), the token check, the caller's role,
# ids that name nothing, a state that forbids the change (409), and request validation (which
# replaces FastAPI's default 422 body, not the shape we send).
# Any route can also meet a body past the size limit (413) or a database that cannot be reached
# or is too busy (503: database_unavailable, database_busy).
STANDARD_ERRORS = documented(400, 401, 403, 404, 409, 413, 422, 503)
