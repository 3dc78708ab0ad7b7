"""GET /openapi.json (what Swagger UI and client generators read) with a server a client
can call: the public URL (NEWSAGG_PUBLIC_URL) when one is set, else the root it was asked
under. Connexion would serve the spec with `servers` rewritten to the root path alone,
which is "" at the root: Swagger UI then lists one empty server.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

SPEC_PATH = "/openapi.json"


class ServedSpecMiddleware:
    def __init__(self, app: ASGIApp, spec: dict[str, Any], public_url: str | None) -> None:
        self.app = app
        self._spec = spec
        self._public_url = public_url
        self._bodies: dict[str, bytes] = {}  # by server URL: the spec is rendered once each

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "").rstrip("/")
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"] not in (SPEC_PATH, root + SPEC_PATH)
        ):
            await self.app(scope, receive, send)
            return
        body = self._body(self._public_url or root or "/")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        sent = b"" if scope["method"] == "HEAD" else body
        await send({"type": "http.response.body", "body": sent})

    def _body(self, server: str) -> bytes:
        body = self._bodies.get(server)
        if body is None:
            spec = {**self._spec, "servers": [{"url": server, "description": _WHERE}]}
            # default=str: YAML reads dates in examples as dates.
            body = self._bodies[server] = json.dumps(spec, default=str).encode()
        return body


_WHERE = "This service (NEWSAGG_PUBLIC_URL, or the root it was asked under)."
