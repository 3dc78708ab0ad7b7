"""The app factory: Connexion serves openapi/openapi.yaml and enforces it; we add the rest.

Connexion validates every parameter and body against the spec and runs the bearer check
named in it. Around that, from the outside in: request ids, access log and metrics
(edge.observability); CORS when origins are configured; per-request dependencies and
rate-limit headers (edge.middleware); and, after authentication, the rate limit itself.
The service lives in the lifespan state: built at start-up, closed at shutdown.
"""

from __future__ import annotations

import copy
import functools
import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import connexion
import yaml
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.problem import problem
from connexion.resolver import Resolver
from connexion.utils import get_function_from_name
from connexion.validators import VALIDATOR_MAP
from starlette.middleware.cors import CORSMiddleware

from edge import demo
from edge.bodies import BodyLimitMiddleware, MediaTypeMiddleware, body_media_types
from edge.connexion_ext import (
    JSONBodyValidator,
    NamedParameterValidator,
    admin_only_operations,
    bearer_handler_for,
    routed_operations,
)
from edge.deps import RENDERINGS, SERVICE
from edge.lean import LeanPathMiddleware, recording
from edge.middleware import RateLimitMiddleware, RequestContextMiddleware
from edge.observability import ObservabilityMiddleware
from edge.problems import bounded, problem_for
from edge.replies import RenderMemo
from edge.served_spec import ServedSpecMiddleware
from newsagg.errors import InvalidInput, ServiceError
from newsagg.log import without_query_strings
from newsagg.service import Service, build_service
from newsagg.settings import Settings

log = logging.getLogger(__name__)
SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
# Response headers a browser script may read (CORS hides all but a few by default).
CORS_EXPOSED_HEADERS = (
    "ETag",
    "Location",
    "Retry-After",
    "WWW-Authenticate",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)


@functools.cache
def _parsed_spec() -> dict[str, Any]:
    # libyaml's parser where PyYAML has it: the pure-Python one took 0.6 s per app.
    return yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_spec() -> dict[str, Any]:
    """The spec as data, read once per process; a copy each time, since Connexion fills
    defaults into what it is given."""
    return copy.deepcopy(_parsed_spec())


def _service_error(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ServiceError)
    return problem_for(exc)


def _bad_request(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Our validators word their own details (edge.problems); Connexion's other messages may
    # append a JSON schema (keep the first line) or quote what was sent (cut short).
    assert isinstance(exc, BadRequestProblem)
    detail = str(exc.detail or "Invalid request").split("\n\n", 1)[0].strip()
    return problem_for(InvalidInput(bounded(detail)))


def _unauthorized(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    detail = getattr(exc, "detail", None) or "A valid API key is required."
    return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _undecodable_body(_request: ConnexionRequest, _exc: Exception) -> ConnexionResponse:
    return problem_for(InvalidInput("The request body is not valid UTF-8 JSON."))


def _value_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # Routing converts an integer path parameter with int(), which refuses more than 4,300
    # digits (`/articles/999...9`): the client's error. Any other ValueError is a bug: a 500,
    # logged with its traceback, as Connexion answers every unhandled exception.
    if "integer string conversion" in str(exc):
        return problem_for(InvalidInput("A number in the request is too long."))
    return ExceptionMiddleware.common_error_handler(request, exc)


def lean_operations(spec: dict[str, Any]) -> frozenset[str]:
    """The operations the lean path may answer: GETs whose security is the plain bearer
    check (not admin-only, not public)."""
    default, admin_only = spec.get("security", []), admin_only_operations(spec)
    return frozenset(
        routed
        for routed, method, operation in routed_operations(spec)
        if method == "get"
        and operation.get("security", default) == [{"bearerAuth": []}]
        # A stream is not one reply: Connexion's full path hands it over as it is.
        and "text/event-stream" not in operation["responses"]["200"].get("content", {})
        and not admin_only[routed]
    )


def header_parameters(spec: dict[str, Any]) -> tuple[bytes, ...]:
    """The names, in lower case, of all header parameters the spec declares."""
    declared = [*spec.get("components", {}).get("parameters", {}).values()]
    for _routed, _method, operation in routed_operations(spec):
        declared += operation.get("parameters", [])
    return tuple(sorted({p["name"].lower().encode() for p in declared if p.get("in") == "header"}))


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


def harvesting(service: Service) -> None:
    """Start the service's harvester (its first round at once) unless NEWSAGG_HARVEST is
    off, its push worker unless NEWSAGG_PUSH is, and the database's upkeep (SQLite: its
    first step 10 s on; PostgreSQL: none): every worker and instance starts them, and a
    lease each lets one of them work."""
    if service.settings.harvest and service.harvester is not None:
        service.harvester.start()
    if service.settings.push:
        service.pusher.start()
    if service.upkeep is not None:
        service.upkeep.start()


def create_app(
    settings: Settings | None = None, service: Service | None = None
) -> connexion.AsyncApp:
    """A ready ASGI app. The lifespan builds the service from `settings` (default: the
    environment; in demo mode over a simulator of its own, see edge.demo) and closes it at
    shutdown; a `service` passed in is shared and left open (tests build one and look
    inside)."""
    settings = service.settings if service is not None else settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[dict[str, Any]]:
        if service is not None:
            harvesting(service)
            try:
                yield {SERVICE: service, RENDERINGS: RenderMemo()}
            finally:
                if service.harvester is not None:
                    service.harvester.stop()
                service.pusher.stop()
                if service.upkeep is not None:
                    service.upkeep.stop()
                await service.disconnect()
            return
        # Demo mode's simulator stops after the service is closed (its harvester first).
        with demo.upstreams(settings) as upstream_settings:
            built = build_service(upstream_settings)
            if upstream_settings.public_url is None:
                log.warning(
                    "NEWSAGG_PUBLIC_URL is not set: the feed and event-stream URLs searches"
                    " give out, and feed ids, follow each request's Host header until it is"
                )
            harvesting(built)
            # What exists now (the spec, Connexion's routes and validators, the service)
            # lives as long as the process: frozen, the collector stops walking it. Requests
            # that wait on Redis are in flight when young objects are collected, so theirs
            # get promoted, and every few promotions trigger a full collection: over the
            # whole heap a 35-45 ms pause, which was the p99 of cache hits with a limited key.
            gc.collect()
            gc.freeze()
            try:
                yield {SERVICE: built, RENDERINGS: RenderMemo()}
            finally:
                await built.disconnect()
                built.close()  # stops the harvester first

    spec = load_spec()
    without_query_strings()  # in uvicorn's access lines, if they are on: logging is set up by now
    app = connexion.AsyncApp(__name__, lifespan=lifespan, pythonic_params=True)
    app.add_api(
        spec,
        strict_validation=True,
        resolver=Resolver(function_resolver=lambda name: recording(resolve_handler(name))),
        validator_map={
            **VALIDATOR_MAP,
            "parameter": NamedParameterValidator,
            "body": MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": JSONBodyValidator}),
        },
        security_map={"bearer": bearer_handler_for(spec)},
    )  # Swagger UI at /ui, spec at /openapi.json
    # Added in order from the outside in: each goes just before the exception middleware.
    app.add_middleware(ObservabilityMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-None-Match",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=[*CORS_EXPOSED_HEADERS],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        ServedSpecMiddleware,
        position=MiddlewarePosition.BEFORE_SWAGGER,
        spec=load_spec(),
        public_url=settings.public_url,
    )
    if settings.lean_path:
        app.add_middleware(
            LeanPathMiddleware,
            position=MiddlewarePosition.BEFORE_SWAGGER,
            operations=lean_operations(spec),
            header_parameters=header_parameters(spec),
        )
    bodies = body_media_types(spec)
    app.add_middleware(
        BodyLimitMiddleware,
        position=MiddlewarePosition.BEFORE_SECURITY,
        operations=frozenset(bodies),
        max_bytes=settings.max_body_bytes,
    )
    app.add_middleware(RateLimitMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION)
    app.add_middleware(
        MediaTypeMiddleware, position=MiddlewarePosition.BEFORE_VALIDATION, media_types=bodies
    )
    app.add_error_handler(ServiceError, _service_error)
    app.add_error_handler(BadRequestProblem, _bad_request)
    app.add_error_handler(401, _unauthorized)
    app.add_error_handler(UnicodeDecodeError, _undecodable_body)
    app.add_error_handler(ValueError, _value_error)
    app.add_error_handler(405, method_not_allowed_handler(spec["paths"]))
    return app


def app_from_env() -> connexion.AsyncApp:
    """Factory for `uvicorn --factory edge.app:app_from_env` (one per worker process)."""
    return create_app(Settings.from_env())
