"""Failures the core reports to the edge, each with the HTTP status it stands for.

The edge turns them into problem+json; the core stays free of HTTP-framework types.
`detail` is shown to the client, so it must never hold a secret.
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status = 400
    title = "Bad Request"


class NotFound(ServiceError):
    status = 404
    title = "Not Found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class RateLimited(ServiceError):
    status = 429
    title = "Too Many Requests"


class Unavailable(ServiceError):
    status = 503
    title = "Service Unavailable"
