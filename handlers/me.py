"""GET /me (not counted against the rate limit: clients call it to read their standing)."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply
from handlers.keys import key_json
from newsagg.service import Service


async def get_me(service: Service, token_info: dict[str, Any]) -> ConnexionResponse:
    key = token_info["key"]
    standing = await service.standing(key)
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
