"""Building replies: explicit content types, and the service behind the current request."""

from __future__ import annotations

import json
from typing import Any

from connexion import request
from connexion.lifecycle import ConnexionResponse

from newsagg.app import request_state
from newsagg.service import Service


def service() -> Service:
    return request_state(request.scope).service


def json_reply(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> ConnexionResponse:
    # An explicit content type: the spec declares problem+json beside application/json,
    # and Connexion will not guess between them (connexion#1956).
    return ConnexionResponse(
        status_code=status,
        content_type="application/json",
        mimetype="application/json",
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        headers=headers,
    )
