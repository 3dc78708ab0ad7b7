"""The one place where core failures become HTTP answers (problem+json, RFC 9457)."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse
from connexion.problem import problem

from newsagg.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceError,
    Unavailable,
)

# Kind of failure -> (status, title). Order matters only for subclasses (first match wins).
STATUS_OF: tuple[tuple[type[ServiceError], int, str], ...] = (
    (InvalidInput, 400, "Bad Request"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (RateLimited, 429, "Too Many Requests"),
    (Unavailable, 503, "Service Unavailable"),
)


def problem_for(error: ServiceError) -> ConnexionResponse:
    """The problem+json answer for a core failure; Retry-After when the core gave one."""
    status, title = next(
        ((s, t) for kind, s, t in STATUS_OF if isinstance(error, kind)),
        (500, "Internal Server Error"),
    )
    headers = {}
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    return problem(status, title, error.detail, headers=headers or None)
