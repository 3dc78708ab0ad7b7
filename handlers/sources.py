"""GET /sources."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply, service
from providers.base import CATEGORIES


def list_sources() -> ConnexionResponse:
    svc = service()
    sources = []
    for provider in svc.aggregator.providers.values():
        health = svc.health.get(provider.name)
        breaker = svc.health.breaker(provider.name)
        last_error: dict[str, Any] | None = None
        if health.last_error is not None:
            last_error = {
                "code": health.last_error.code,
                "message": health.last_error.message,
                "at": health.last_error.at.isoformat(),
            }
        sources.append(
            {
                "name": provider.name,
                "enabled": provider.enabled,
                "categories": [c for c in CATEGORIES if c in provider.categories],
                "state": breaker.state,
                "retry_in_seconds": breaker.retry_in_seconds,
                "last_success_at": health.last_success_at and health.last_success_at.isoformat(),
                "last_error": last_error,
            }
        )
    return json_reply({"sources": sources})
