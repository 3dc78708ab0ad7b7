"""Building replies: explicit content types, ETags and conditional answers, remembered
renderings. Helpers take what they need as arguments."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from cachetools import LRUCache
from connexion.lifecycle import ConnexionResponse

T = TypeVar("T")


def json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_reply(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> ConnexionResponse:
    # An explicit content type: the spec declares problem+json beside application/json,
    # and Connexion will not guess between them (connexion#1956).
    return bytes_reply(json_bytes(body), status, headers)


def bytes_reply(
    payload: bytes,
    status: int = 200,
    headers: dict[str, str] | None = None,
    media_type: str = "application/json",
) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        content_type=media_type,
        mimetype=media_type,
        body=payload,
        headers=headers,
    )


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison against a list of ETags, or `*`."""
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag.removeprefix("W/") in candidates


def weak_etag(content: bytes) -> str:
    """A weak ETag over `content`: the part of a body that is content (for a feed page, all
    but `cache_status`, a note on how the page was produced, not what it says)."""
    return 'W/"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def cacheable_reply(
    body: bytes,
    etag: str,
    max_age: int,
    if_none_match: str | None,
    media_type: str = "application/json",
) -> ConnexionResponse:
    """200 with an ETag and Cache-Control, or a bodiless 304 when the client has it already.

    `private`: the answer depends on the caller's key."""
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={max_age}"}
    if if_none_match and _matches(if_none_match, etag):
        return ConnexionResponse(status_code=304, headers=headers)
    return bytes_reply(body, 200, headers, media_type)


class RenderMemo:
    """Renderings remembered under a key the core gives (bounded, thread-safe)."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._renderings: LRUCache[Hashable, Any] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get(self, key: Hashable | None, render: Callable[[], T]) -> T:
        """`render()`, remembered under `key`; a None key is never remembered."""
        if key is None:
            return render()
        with self._lock:
            remembered = self._renderings.get(key)
        if remembered is None:
            remembered = render()
            with self._lock:
                self._renderings[key] = remembered
        return remembered
