"""/keys: API key management (admin keys only: x-newsagg-admin in the spec).

Plain functions: they wait on the store, so Connexion runs them off the event loop.
"""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply
from newsagg.errors import Conflict, NotFound
from newsagg.service import Service
from newsagg.store import KeyRecord


def key_json(record: KeyRecord) -> dict[str, Any]:
    """Metadata only: the key itself and its digest never leave the store."""
    return {
        "id": record.id,
        "name": record.name,
        "tier": record.tier,
        "admin": record.admin,
        "prefix": record.prefix,
        "created_at": record.created_at,
    }


def create_key(service: Service, body: dict[str, Any]) -> ConnexionResponse:
    new = service.keys.create(
        name=body["name"], tier=body.get("tier", "basic"), admin=body.get("admin", False)
    )
    return json_reply(
        {**key_json(new.record), "key": new.plaintext},
        status=201,
        headers={"Location": f"/keys/{new.record.id}"},
    )


def list_keys(service: Service) -> ConnexionResponse:
    return json_reply({"keys": [key_json(record) for record in service.keys.list()]})


def get_key(service: Service, key_id: int) -> ConnexionResponse:
    record = service.keys.get(key_id)
    if record is None:
        raise NotFound(f"No active key with id {key_id}.")
    return json_reply(key_json(record))


def revoke_key(service: Service, token_info: dict[str, Any], key_id: int) -> ConnexionResponse:
    if token_info["key"].id == key_id:
        raise Conflict("A key cannot revoke itself; use another admin key.")
    if not service.keys.revoke(key_id):
        raise NotFound(f"No active key with id {key_id}.")
    return ConnexionResponse(status_code=204)
