"""Request ids, one structured access log line per request, and request metrics.

The outermost of our middlewares: it sees every answer, errors included. The request id
goes into newsagg.log's context variable, so every log line written while serving the
request carries it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.deps import service_of
from newsagg.log import request_id
from newsagg.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
LOGGED_PATH_CHARACTERS = 300  # a line per request, not growing with the request
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")

access_log = logging.getLogger("newsagg.access")
_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per line


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and VALID_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return os.urandom(16).hex()  # absent or unusable (a client's id could forge log lines)


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._known: dict[tuple[Metrics, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        # Connexion copies the scope on its way in; a dict created here is shared with the
        # copies, so routing and authentication results written into it are visible below.
        extensions = scope.setdefault("extensions", {})
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, rid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            routed = extensions.get("connexion_routing", {}).get("operation_id")
            operation = routed.rsplit(".", 1)[-1] if routed else "unrouted"
            token_info = extensions.get("connexion_context", {}).get("token_info") or {}
            key = token_info.get("key")
            counted, timed = self._series(service_of(scope).metrics, operation, status)
            counted.inc()
            timed.observe(elapsed)
            access_log.info(
                _json(
                    {
                        "event": "access",
                        "request_id": rid,
                        "method": scope["method"],
                        # Never the query string: it may hold search text or a feed token.
                        "path": scope["path"][:LOGGED_PATH_CHARACTERS],
                        "operation": operation,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "key_prefix": key.prefix if key is not None else None,
                    }
                )
            )
            request_id.reset(token)

    def _series(self, metrics: Metrics, operation: str, status: int) -> tuple[Any, Any]:
        """The request counter's and latency histogram's series for these labels, looked
        up once (prometheus-client's `labels()` costs more than the increment itself)."""
        found = self._known.get((metrics, operation, status))
        if found is None:
            found = (
                metrics.requests.labels(operation, str(status)),
                metrics.latency.labels(operation),
            )
            self._known[(metrics, operation, status)] = found
        return found
