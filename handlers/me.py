"""GET /me."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply, service
from handlers.keys import key_json


def get_me(token_info: dict[str, Any]) -> ConnexionResponse:
    svc = service()
    key = token_info["key"]
    standing = svc.limiter.peek(key.id, svc.settings.rate_limits[key.tier])
    return json_reply(
        {
            "key": key_json(key),
            "rate_limit": {
                "limit": standing.limit,
                "remaining": standing.remaining,
                "reset_seconds": standing.reset_seconds,
            },
        }
    )
