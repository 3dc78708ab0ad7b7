"""Per-request dependencies and rate limiting, around Connexion's own layers.

- `RequestContextMiddleware` (outside Connexion's exception handling, so it sees every
  answer): hands handlers their dependencies (`service`, `renderings`, `base_url` and the
  headers `if_none_match`, `last_event_id`, `accept`) and puts the caller's rate-limit
  standing on every answer of a counted request, errors included.
- `RateLimitMiddleware` (after authentication, before validation): counts the request
  against the caller's hourly limit, or refuses it with 429.

A 304 revalidation is not charged for (as GitHub's API does): it is counted on the way in,
like every request, and given back when the answer turns out to be a 304.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.connexion_ext import BEARER_REFUSAL
from edge.deps import (
    RENDERINGS,
    SERVICE,
    base_url,
    connexion_context,
    headers,
    service_of,
)
from newsagg.errors import RateLimited, Unavailable
from newsagg.ratelimit import Standing
from newsagg.store import KeyRecord

# Operations that do not count against the rate limit (clients poll it to read their standing).
UNCOUNTED_OPERATIONS = frozenset({"handlers.me.getMe"})  # as Connexion resolves it
CHARGE = "newsagg_charge"  # in the scope's extensions: what the request was charged


@dataclass(slots=True)
class Charge:
    key: KeyRecord
    standing: Standing


def rate_limit_headers(standing: Standing) -> list[tuple[bytes, bytes]]:
    if standing.limit is None:
        return []
    return [
        (b"x-ratelimit-limit", str(standing.limit).encode()),
        (b"x-ratelimit-remaining", str(standing.remaining).encode()),
        (b"x-ratelimit-reset", str(standing.reset_seconds).encode()),
    ]


# Request headers handed to handlers, by the argument name they take them as.
PASSED_HEADERS = {
    b"if-none-match": "if_none_match",
    b"last-event-id": "last_event_id",
    b"accept": "accept",
}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = service_of(scope)
        context = connexion_context(scope)
        context[SERVICE] = service
        context[RENDERINGS] = scope["state"][RENDERINGS]
        # Connexion validates header parameters but hands handlers none: these come so.
        found = headers(scope, (*PASSED_HEADERS, b"host"))
        for name, argument in PASSED_HEADERS.items():
            context[argument] = found[name]
        # The URLs an answer gives out: the public URL when one is set, so that a forged
        # Host header never reaches them.
        context["base_url"] = service.settings.public_url or base_url(scope, found[b"host"])
        extensions = scope["extensions"]

        async def send_with_standing(message: Message) -> None:
            charge: Charge | None = extensions.get(CHARGE)
            if message["type"] == "http.response.start" and charge is not None:
                if message["status"] == 304 and charge.standing.entry is not None:
                    # This layer is outside the error handlers: a store that went away
                    # since the hit leaves the request charged rather than fail the 304.
                    with contextlib.suppress(Unavailable):
                        charge.standing = await service.uncount_request(
                            charge.key, charge.standing.entry
                        )
                message["headers"] = [
                    *message.get("headers", []),
                    *rate_limit_headers(charge.standing),
                ]
            await send(message)

        await self.app(scope, receive, send_with_standing)


async def charge(scope: Scope, key: KeyRecord, operation: str) -> None:
    """Count an authenticated request against its key's limit; RateLimited when over."""
    if operation in UNCOUNTED_OPERATIONS:
        return
    standing = await service_of(scope).count_request(key)
    scope["extensions"][CHARGE] = Charge(key, standing)
    if not standing.allowed:
        raise RateLimited(
            f"Rate limit of {standing.limit} requests per hour exceeded; "
            f"retry in {standing.reset_seconds} seconds.",
            retry_after_seconds=standing.reset_seconds,
        )


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions", {})
        # Empty where the operation may be called without a key (the event stream with its
        # search's token) and was; but a key sent and refused is refused.
        token_info = extensions.get("connexion_context", {}).get("token_info")
        refusal = extensions.get(BEARER_REFUSAL)
        if refusal is not None and not token_info:
            raise refusal
        if token_info:
            await charge(scope, token_info["key"], extensions["connexion_routing"]["operation_id"])
        await self.app(scope, receive, send)
