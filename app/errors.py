"""Domain errors. Services raise these; app/api/errors.py and app/web/errors.py render them."""

from __future__ import annotations


class DomainError(Exception):
    """Base: a stable machine-readable code, an HTTP status and a sentence for people."""

    code = "error"
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    code = "invalid_input"
    status_code = 422


class AuthenticationFailed(DomainError):
    code = "authentication_failed"
    status_code = 401


class WrongPassword(DomainError):
    """A signed-in user's current password did not match (not 401: their login is fine)."""

    code = "wrong_password"
    status_code = 403


class PermissionDenied(DomainError):
    code = "permission_denied"
    status_code = 403


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"


class NotFound(DomainError):
    code = "not_found"
    status_code = 404


class Conflict(DomainError):
    code = "conflict"
    status_code = 409


class RateLimited(DomainError):
    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A service Smiley depends on (the database, the job queue) cannot be reached right now;
    nothing was recorded and the same request may be sent again later."""

    code = "service_unavailable"
    status_code = 503


class DiskFull(DomainError):
    """The data folder's disk ran out of space while writing; what was half-written is removed
    before this is raised."""

    code = "disk_full"
    status_code = 507
