"""The lean path: Connexion judges each request shape once.

For a bodiless GET, whether Connexion accepts a request, and the arguments it hands the
handler, depend only on the operation and its inputs: the path, the query string and the
header parameters the operation declares (ours declare none). So the first request of a
shape goes through Connexion's whole stack, and when Connexion accepted it (the handler
was called), the shape is remembered with the handler and the arguments Connexion made.
An exact repeat then skips routing, validation and Connexion's per-request decorators,
but nothing that depends on the caller:

- the bearer check runs on every request (`edge.security.token_info`, the same function
  Connexion's scheme calls), so a revoked key is refused at once;
- the request is counted by the same rate limiter (`edge.middleware.charge`);
- the handler gets Connexion's arguments of the first time plus this request's own
  dependencies, and its reply is turned into a response the way Connexion does it.

Anything else takes the full path: a body, another method, an unseen shape, a shape
Connexion refused, an operation whose security is not the plain bearer check (admin-only
or public ones), and any request whose key does not pass (Connexion then answers the 401
or 403 itself). The middleware sits inside Connexion's exception handling, so an error
raised here (a 429, a core failure) is answered by the same handlers as on the full path.
Remembered shapes are bounded (least recently used go first).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from connexion.frameworks.starlette import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.deps import PER_REQUEST, connexion_context, header, service_of
from edge.middleware import charge
from edge.security import token_info

REMEMBERED_SHAPES = 4096

# Set by the lean middleware around a full-path request; the handler wrapper (see
# `recording`) notes there what Connexion called it with. A context variable, because the
# wrapper runs in Connexion's call (on a worker thread for a plain function) and sees no
# scope; the dict itself is shared, so what the wrapper writes, the middleware reads.
_noted: ContextVar[dict[str, Any] | None] = ContextVar("lean_noted", default=None)


@dataclass(frozen=True, slots=True)
class Shape:
    """What Connexion decided for one (path, query string): whom to call, with what."""

    operation_id: str
    function: Callable[..., Any]
    arguments: dict[str, Any]  # from the path and query, as Connexion converted them
    dependencies: tuple[str, ...]  # per-request arguments the handler takes
    is_async: bool  # else Connexion would run it on a worker thread, and so do we


def recording(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, noting its arguments for the lean path when asked to. Signature and kind
    (async or plain) are kept: Connexion inspects the one and dispatches on the other."""

    def note(kwargs: dict[str, Any]) -> None:
        noted = _noted.get()
        if noted is not None:
            noted["function"] = function
            noted["arguments"] = {k: v for k, v in kwargs.items() if k not in PER_REQUEST}

    if asyncio.iscoroutinefunction(function):

        @functools.wraps(function)
        async def wrapper(**kwargs: Any) -> Any:
            note(kwargs)
            return await function(**kwargs)

    else:

        @functools.wraps(function)
        def wrapper(**kwargs: Any) -> Any:
            note(kwargs)
            return function(**kwargs)

    return wrapper


def _bearer_token(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer <token>`, split as Connexion splits it."""
    parts = (header(scope, b"authorization") or "").split(maxsplit=1)
    return parts[1] if len(parts) == 2 and parts[0].lower() == "bearer" else None


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False


ShapeKey = tuple[str, bytes, tuple[str | None, ...]]


class LeanPathMiddleware:
    def __init__(
        self, app: ASGIApp, operations: frozenset[str], header_parameters: tuple[bytes, ...]
    ) -> None:
        """`operations`: the routed ids of the GET operations whose security is the plain
        bearer check; only their shapes are remembered. `header_parameters`: the names (in
        lower case) of every header the spec declares as a parameter: part of a shape."""
        self.app = app
        self.operations = operations
        self.header_parameters = header_parameters
        self._shapes: LRUCache[ShapeKey, Shape] = LRUCache(maxsize=REMEMBERED_SHAPES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or _has_body(scope):
            await self.app(scope, receive, send)
            return
        key = (
            scope["path"],
            scope["query_string"],
            tuple(header(scope, name) for name in self.header_parameters),
        )
        shape = self._shapes.get(key)
        if shape is None or not await self._lean(shape, scope, receive, send):
            service_of(scope).metrics.shapes_judged.inc()
            await self._full(key, scope, receive, send)

    async def _full(self, key: ShapeKey, scope: Scope, receive: Receive, send: Send) -> None:
        noted: dict[str, Any] = {}
        token = _noted.set(noted)
        try:
            await self.app(scope, receive, send)
        finally:
            _noted.reset(token)
        routed = scope["extensions"].get("connexion_routing", {}).get("operation_id")
        if "function" in noted and routed in self.operations:
            function = noted["function"]
            taken = inspect.signature(function).parameters
            self._shapes[key] = Shape(
                routed,
                function,
                noted["arguments"],
                tuple(n for n in PER_REQUEST if n in taken),
                asyncio.iscoroutinefunction(function),
            )

    async def _lean(self, shape: Shape, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a remembered shape; False (nothing sent) when the full path must."""
        service = service_of(scope)
        token = _bearer_token(scope)
        info = None if token is None else await token_info(service, token, False)
        if info is None:
            return False  # Connexion answers the 401 in its own words
        service.metrics.shapes_remembered.inc()
        context = connexion_context(scope)
        context["token_info"] = info
        context["user"] = info["sub"]
        scope["extensions"]["connexion_routing"] = {"operation_id": shape.operation_id}
        await charge(scope, info["key"], shape.operation_id)
        kwargs = {**shape.arguments, **{name: context[name] for name in shape.dependencies}}
        if shape.is_async:
            reply = await shape.function(**kwargs)
        else:
            reply = await run_in_threadpool(shape.function, **kwargs)
        await Starlette.connexion_to_framework_response(reply)(scope, receive, send)
        return True
