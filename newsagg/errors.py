"""Failures the core reports to the edge, in domain terms.

The edge turns each kind into an HTTP answer through one table (edge/problems.py); the core
names no status code and no header. `detail` is shown to the client, so it must never hold
a secret.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, detail: str, *, retry_after_seconds: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # When trying again makes sense, and how soon (a rate limit, an unreachable store).
        self.retry_after_seconds = retry_after_seconds


class InvalidInput(ServiceError):
    """The request itself is wrong; repeating it will not help."""


class NotFound(ServiceError):
    """The thing asked for does not exist (or no longer does)."""


class Conflict(ServiceError):
    """The request is valid but clashes with the current state."""


class RateLimited(ServiceError):
    """The caller has used up its allowance for now."""


class Unavailable(ServiceError):
    """Nothing could be delivered now: no provider answered, or a store is unreachable."""
