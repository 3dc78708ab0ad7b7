"""The ceiling: a bare ASGI app that serves the same response bytes newsagg served, with
the same bearer check and the same two query parameters validated by hand.

    BARE_BODY=/path/to/body.json BARE_KEY=nagg_... uvicorn bench.bare_asgi:app
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

BODY = Path(os.environ["BARE_BODY"]).read_bytes()
AUTHORIZATION = f"Bearer {os.environ['BARE_KEY']}".encode()
CATEGORIES = {"business", "entertainment", "general", "health", "science", "sports", "technology"}
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def _answer(send, status: int, body: bytes, headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if dict(scope["headers"]).get(b"authorization") != AUTHORIZATION:
        await _answer(send, 401, b"{}", [(b"content-type", b"application/problem+json")])
        return
    query = parse_qs(scope["query_string"].decode())
    limit = query.get("limit", ["20"])[0]
    if query.get("category", ["technology"])[0] not in CATEGORIES or not (
        limit.isdigit() and 1 <= int(limit) <= 100
    ):
        await _answer(send, 400, b"{}", [(b"content-type", b"application/problem+json")])
        return
    await _answer(send, 200, BODY, HEADERS)
