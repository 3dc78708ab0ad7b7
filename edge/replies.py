"""Building replies: explicit content types, ETags, and the service behind the request."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from connexion import request
from connexion.lifecycle import ConnexionResponse

from edge.app import request_state
from newsagg.service import Service


def service() -> Service:
    return request_state(request.scope).service


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_reply(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> ConnexionResponse:
    # An explicit content type: the spec declares problem+json beside application/json,
    # and Connexion will not guess between them (connexion#1956).
    return _bytes_reply(json_bytes(body), status, headers)


def _bytes_reply(payload: bytes, status: int, headers: dict[str, str] | None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        content_type="application/json",
        mimetype="application/json",
        body=payload,
        headers=headers,
    )


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison against a list of ETags, or `*`."""
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag.removeprefix("W/") in candidates


def weak_etag(content: bytes) -> str:
    """A weak ETag over `content`, the part of a body that is content: for a page, all but
    `cache_status` (a page served from the cache is the same content as when it was
    fetched; only the note on how it was produced differs)."""
    return 'W/"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def cacheable_reply(body: bytes, etag: str) -> ConnexionResponse:
    """200 with an ETag and Cache-Control, or a bodiless 304 when the client has it already."""
    headers = {
        "ETag": etag,
        # private: the answer depends on the caller's key; fresh as long as our own cache.
        "Cache-Control": f"private, max-age={int(service().settings.cache_ttl)}",
    }
    if _matches(request.headers.get("if-none-match", ""), etag):
        return ConnexionResponse(status_code=304, headers=headers)
    return _bytes_reply(body, 200, headers)
