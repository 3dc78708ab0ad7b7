"""Bearer-token checks named in the spec (`x-bearerInfoFunc`).

Connexion does not enforce scopes on an http bearer scheme, so admin-only operations use
their own scheme, `adminBearerAuth`, whose check answers 403 for a valid non-admin key.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import Forbidden
from connexion.lifecycle import ConnexionRequest

from edge.deps import service_of


async def key_info(token: str, request: ConnexionRequest) -> dict[str, Any] | None:
    """Token info for an active key, or None (Connexion answers 401)."""
    record = service_of(request.scope).keys.verify(token)
    if record is None:
        return None
    return {"sub": record.prefix, "key": record}


async def admin_key_info(token: str, request: ConnexionRequest) -> dict[str, Any] | None:
    info = await key_info(token, request)
    if info is not None and not info["key"].admin:
        raise Forbidden(detail="This operation needs an admin key.")
    return info
