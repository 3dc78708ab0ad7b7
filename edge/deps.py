"""What a request may depend on, and where it comes from.

The service is built once per app by the lifespan and reaches each request through the
ASGI lifespan state (`scope["state"]`). `RequestContextMiddleware` hands each operation
what it declares as a parameter, the Connexion way: entries of Connexion's request context
become handler arguments of the same name (as `token_info` does after authentication).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import Scope

from newsagg.service import Service

SERVICE = "service"  # in the lifespan state, and the handler argument's name
RENDERINGS = "renderings"  # the app's RenderMemo, likewise
CONNEXION_CONTEXT = "connexion_context"
# Handler arguments that come from the request's context, not from its path or query.
PER_REQUEST = (
    SERVICE,
    RENDERINGS,
    "if_none_match",
    "last_event_id",
    "accept",
    "base_url",
    "token_info",
    "user",
)


def service_of(scope: Scope) -> Service:
    return scope["state"][SERVICE]


def connexion_context(scope: Scope) -> dict[str, Any]:
    """The dict Connexion turns into handler arguments. Created here, before Connexion
    copies the scope, it is shared with every copy: what is written below is seen above."""
    return scope.setdefault("extensions", {}).setdefault(CONNEXION_CONTEXT, {})


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (`name` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def headers(scope: Scope, names: Iterable[bytes]) -> dict[bytes, str | None]:
    """The first value of each of these request headers (names in lower case), in one pass."""
    found: dict[bytes, str | None] = dict.fromkeys(names)
    for key, value in scope["headers"]:
        if key in found and found[key] is None:
            found[key] = value.decode("latin-1")
    return found


def base_url(scope: Scope, host: str | None) -> str:
    """The service's URL as this request reached it (scheme, `host` from the Host header,
    root path), for the absolute URLs an answer gives out (a feed URL is handed to a feed
    reader alone)."""
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"
