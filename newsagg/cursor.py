"""Opaque, signed page cursors.

A cursor holds the sort position of the last article served (what the order sorts by —
its publication time or its relevance — and its id): a keyset position, so new stories
arriving between two page requests neither repeat nor skip articles; by relevance, also
how far back the ranking reaches (its horizon), so every page ranks the same articles;
plus a fingerprint of the query it belongs to. It is signed with a secret kept
in the database (shared by every worker, stable across restarts), so a client cannot forge
positions or move a cursor to another query: any change is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

SIGNATURE_BYTES = 16


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    value: float  # what the order sorts by: published_us, or a relevance score
    article_id: int
    # sort=relevance: the (published_us, id) the ranking reaches back to, kept by every page
    horizon: tuple[int, int] | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]

    def encode(self, fingerprint: str, position: Position) -> str:
        fields = [fingerprint, position.value, position.article_id]
        if position.horizon is not None:
            fields.extend(position.horizon)
        payload = json.dumps(fields, separators=(",", ":")).encode()
        return _b64(self._sign(payload) + payload)

    def decode(self, cursor: str, fingerprint: str) -> Position:
        try:
            raw = _unb64(cursor)
        except ValueError:
            raise InvalidCursor("cursor is not valid") from None
        signature, payload = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidCursor("cursor is not valid")
        try:
            owner, value, article_id, *horizon = json.loads(payload)
        except ValueError:  # signed by an older release, in another layout
            raise InvalidCursor("cursor is not valid") from None
        if len(horizon) not in (0, 2):
            raise InvalidCursor("cursor is not valid")
        if owner != fingerprint:
            raise InvalidCursor("cursor belongs to a different query")
        return Position(value, article_id, (horizon[0], horizon[1]) if horizon else None)
