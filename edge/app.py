"""The app factory: Connexion serves openapi/openapi.yaml and enforces it; we add the rest.

Connexion validates every parameter and body against the spec and runs the bearer check
named in it. Around that, from the outside in: request ids, access log and metrics
(edge.observability); CORS when origins are configured; a middleware that gives each
request the service and puts the rate-limit headers on every response (errors included);
and, after authentication, one that counts the request against the caller's limit.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import connexion
import yaml
from connexion.exceptions import BadRequestProblem
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.problem import problem
from connexion.resolver import Resolver
from connexion.utils import get_function_from_name
from connexion.validators import VALIDATOR_MAP
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.connexion_ext import NamedParameterValidator, bearer_handler_for
from edge.observability import ObservabilityMiddleware
from newsagg.errors import InvalidInput, RateLimited, ServiceError
from newsagg.ratelimit import Standing
from newsagg.service import Service, build_service
from newsagg.settings import Settings

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
STATE_KEY = "newsagg"
# Response headers a browser script may read (CORS hides all but a few by default).
CORS_EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
# Operations that do not count against the rate limit (clients poll it to read their standing).
UNCOUNTED_OPERATIONS = frozenset({"handlers.me.getMe"})  # as Connexion resolves it


@dataclass(slots=True)
class RequestState:
    """Per request; a mutable holder, because Connexion copies the ASGI scope on its way in."""

    service: Service
    standing: Standing | None = None


def request_state(scope: Scope) -> RequestState:
    return scope[STATE_KEY]


def rate_limit_headers(standing: Standing) -> dict[str, str]:
    if standing.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(standing.limit),
        "X-RateLimit-Remaining": str(standing.remaining),
        "X-RateLimit-Reset": str(standing.reset_seconds),
    }


class ServiceMiddleware:
    """Attach the service to the request; add rate-limit headers to the answer."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = RequestState(self.service)
        scope[STATE_KEY] = state

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and state.standing is not None:
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in rate_limit_headers(state.standing).items()
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimitMiddleware:
    """After authentication: count the request against the caller's hourly limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions", {})
        token_info = extensions.get("connexion_context", {}).get("token_info")
        operation = extensions.get("connexion_routing", {}).get("operation_id")
        if token_info is not None and operation not in UNCOUNTED_OPERATIONS:
            state = request_state(scope)
            key = token_info["key"]
            limit = state.service.settings.rate_limits[key.tier]
            state.standing = state.service.limiter.hit(key.id, limit)
            if not state.standing.allowed:
                raise RateLimited(
                    f"Rate limit of {limit} requests per hour exceeded; "
                    f"retry in {state.standing.reset_seconds} seconds.",
                    headers={"Retry-After": str(state.standing.reset_seconds)},
                )
        await self.app(scope, receive, send)


def _problem(error: ServiceError) -> ConnexionResponse:
    return problem(error.status, error.title, error.detail, headers=error.headers or None)


def _service_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ServiceError)
    return _problem(exc)


def _bad_request(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Connexion appends the whole JSON schema to a validation message; keep the first line.
    assert isinstance(exc, BadRequestProblem)
    detail = str(exc.detail or "Invalid request").split("\n\n", 1)[0].strip()
    return _problem(InvalidInput(detail))


def _unauthorized(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    detail = getattr(exc, "detail", None) or "A valid API key is required."
    return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _undecodable_body(_request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
    return _problem(InvalidInput("The request body is not valid UTF-8 JSON."))


def resolve_handler(operation_id: str) -> Any:
    """`handlers.articles.listArticles` -> the function `handlers.articles.list_articles`.

    The spec keeps the camelCase operationIds that client generators expect; Python keeps
    its snake_case names.
    """
    module, _, name = operation_id.rpartition(".")
    return get_function_from_name(f"{module}.{re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()}")


def method_not_allowed_handler(spec_paths: dict[str, Any]) -> Any:
    """A 405 whose `Allow` lists every method of the path (Connexion lists only the first
    route's), computed once from the spec."""
    allowed = []
    for template, item in spec_paths.items():
        pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "/?$")
        methods = sorted(m.upper() for m in item if m in ("get", "post", "put", "patch", "delete"))
        allowed.append((pattern, ", ".join(methods)))

    def handle(request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
        allow = next((m for pattern, m in allowed if pattern.match(request.url.path)), "")
        detail = f"{request.method} is not allowed here; use {allow}."
        return problem(405, "Method Not Allowed", detail, headers={"Allow": allow})

    return handle


def create_app(
    settings: Settings | None = None, service: Service | None = None
) -> connexion.AsyncApp:
    """A ready ASGI app. Pass `service` to share one (tests), else it is built from settings."""
    service = service or build_service(settings or Settings.from_env())

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        service.close()

    spec = yaml.safe_load(SPEC_PATH.read_text())
    app = connexion.AsyncApp(__name__, lifespan=lifespan, pythonic_params=True)
    app.add_api(
        spec,
        strict_validation=True,
        resolver=Resolver(function_resolver=resolve_handler),
        validator_map={**VALIDATOR_MAP, "parameter": NamedParameterValidator},
        security_map={"bearer": bearer_handler_for(spec)},
    )  # Swagger UI at /ui, spec at /openapi.json
    # Added in order from the outside in: each goes just before the exception middleware.
    app.add_middleware(
        ObservabilityMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=service.metrics,
    )
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            allow_origins=list(service.settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match", "X-Request-ID"],
            expose_headers=[*CORS_EXPOSED_HEADERS],
            max_age=600,
        )
    app.add_middleware(
        ServiceMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION, service=service
    )
    app.add_middleware(RateLimitMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION)
    app.add_error_handler(ServiceError, _service_error)
    app.add_error_handler(BadRequestProblem, _bad_request)
    app.add_error_handler(401, _unauthorized)
    app.add_error_handler(UnicodeDecodeError, _undecodable_body)
    app.add_error_handler(405, method_not_allowed_handler(spec["paths"]))
    return app


def app_from_env() -> connexion.AsyncApp:
    """Factory for `uvicorn --factory edge.app:app_from_env` (one per worker process)."""
    return create_app(Settings.from_env())
