"""The bearer-token check named in the spec (`x-bearerInfoFunc`).

The spec has one bearer scheme; operations marked `x-newsagg-admin: true` need an admin
key. `edge.connexion_ext.bearer_handler_for` reads that marker from the spec and tells
this function, as `admin_only`, whether the routed operation needs one.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import Forbidden
from connexion.lifecycle import ConnexionRequest

from edge.deps import service_of
from newsagg.service import Service
from newsagg.store import without_blocking


async def key_info(
    token: str, request: ConnexionRequest, admin_only: bool
) -> dict[str, Any] | None:
    """Token info for an active key, or None (Connexion answers 401)."""
    return await token_info(service_of(request.scope), token, admin_only)


async def token_info(service: Service, token: str, admin_only: bool) -> dict[str, Any] | None:
    """The check itself, shared with the lean path (edge.lean).

    A valid key without the rights the operation needs is a 403: the key is fine, the
    request is not allowed.
    """
    record = service.keys.remembered(token)
    if record is not None:
        service.metrics.keys_from_memory.inc()
    else:
        service.metrics.keys_from_store.inc()
        # Off the event loop when the keys live on a database server (see without_blocking).
        record = await without_blocking(service.store, service.keys.verify, token)
    if record is None:
        return None
    if admin_only and not record.admin:
        raise Forbidden(detail="This operation needs an admin key.")
    return {"sub": record.prefix, "key": record}
