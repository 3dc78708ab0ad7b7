"""Request bodies before Connexion reads them: bounded in size, typed as the spec declares.

Connexion reads a whole body into memory to validate it, picks the validator by the
Content-Type exactly as written, and hands the handler raw bytes when it found none: an
upper-case `APPLICATION/JSON` or a missing type reached `handlers/` unvalidated (a 500).
So, for the operations that take a body (read from the spec once):

- `BodyLimitMiddleware` (after routing, before authentication): a body larger than
  `NEWSAGG_MAX_BODY_BYTES` is a 413, refused by its Content-Length before a byte of it
  is read; a chunked body is read here, counted as it arrives and refused as soon as it
  passes the limit, else passed on with its length (Connexion takes a body without
  Content-Length for no body at all).
- `MediaTypeMiddleware` (just before validation): the Content-Type's media type, compared
  case-insensitively (RFC 9110 8.3.1), must be one the operation declares; it is passed on
  as declared, without parameters (application/json has none: JSON is UTF-8, RFC 8259), so
  that Connexion validates the body and parses it for the handler. Anything else is a 415,
  a missing Content-Type on a body included: RFC 9110 8.3 lets a recipient take such a
  body for application/octet-stream, which no operation takes, and a guess would turn a
  client's forgotten header into a puzzling 400 about JSON syntax.

Operations without a body are left alone: nothing reads what a client sends them.
"""

from __future__ import annotations

from typing import Any

from connexion.exceptions import BadRequestProblem, ProblemException, UnsupportedMediaTypeProblem
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.connexion_ext import routed_operations
from edge.problems import quoted


def body_media_types(spec: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each operation that takes a body, by the id Connexion routes it under -> the media
    types it declares (in lower case)."""
    return {
        routed: tuple(media.lower() for media in operation["requestBody"]["content"])
        for routed, _method, operation in routed_operations(spec)
        if "requestBody" in operation
    }


def _operation(scope: Scope) -> str | None:
    return scope.get("extensions", {}).get("connexion_routing", {}).get("operation_id")


class ContentTooLarge(ProblemException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status=413,
            title="Content Too Large",
            detail=f"The request body is larger than {limit} bytes.",
        )


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, whether the body is chunked) as the request announces them."""
    length, chunked = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():  # the server refuses these; the test client does not
                raise BadRequestProblem(detail="Content-Length is not a number.")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, operations: frozenset[str], max_bytes: int) -> None:
        """`operations`: the routed ids of the operations that take a body."""
        self.app = app
        self.operations = operations
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _operation(scope) not in self.operations:
            await self.app(scope, receive, send)
            return
        length, chunked = _framing(scope)
        if length is not None and length > self.max_bytes:
            raise ContentTooLarge(self.max_bytes)
        if length is None and chunked:
            messages, size = await self._read_chunked(receive)
            replay = iter(messages)

            async def receive_replayed() -> Message:
                return next(replay, None) or await receive()

            headers = [(n, v) for n, v in scope["headers"] if n != b"transfer-encoding"]
            scope = {**scope, "headers": [*headers, (b"content-length", b"%d" % size)]}
            receive = receive_replayed
        await self.app(scope, receive, send)

    async def _read_chunked(self, receive: Receive) -> tuple[list[Message], int]:
        """The body's messages, read until its end, a disconnect, or past the limit (413)."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, size  # the client went away: let the app find out
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise ContentTooLarge(self.max_bytes)
            if not message.get("more_body", False):
                return messages, size


class MediaTypeMiddleware:
    def __init__(self, app: ASGIApp, media_types: dict[str, tuple[str, ...]]) -> None:
        """`media_types`: body_media_types(spec)."""
        self.app = app
        self.media_types = media_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = self.media_types.get(_operation(scope)) if scope["type"] == "http" else None
        if accepted is None:
            await self.app(scope, receive, send)
            return
        declared = [value for name, value in scope["headers"] if name == b"content-type"]
        expected = " or ".join(accepted)
        if not declared:
            length, chunked = _framing(scope)
            if length or chunked:
                raise UnsupportedMediaTypeProblem(
                    detail=f"The body has no Content-Type; send it as {expected}."
                )
            await self.app(scope, receive, send)  # no body either: Connexion says it is required
            return
        media = declared[0].split(b";", 1)[0].strip().decode("latin-1").lower()
        if len(declared) > 1 or media not in accepted:
            shown = "several" if len(declared) > 1 else quoted(media)
            raise UnsupportedMediaTypeProblem(
                detail=f"Content-Type {shown} is not accepted here; send {expected}."
            )
        headers = [(n, v) for n, v in scope["headers"] if n != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", media.encode())]}
        await self.app(scope, receive, send)
