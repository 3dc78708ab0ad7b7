"""GET /sources."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from handlers._reply import json_reply, service
from providers.base import CATEGORIES


def list_sources() -> ConnexionResponse:
    svc = service()
    sources = []
    for provider in svc.aggregator.providers.values():
        health = svc.health.get(provider.name)
        last_error = health.last_error
        sources.append(
            {
                "name": provider.name,
                "enabled": provider.enabled,
                "categories": [c for c in CATEGORIES if c in provider.categories],
                "last_success_at": health.last_success_at and health.last_success_at.isoformat(),
                "last_error": last_error
                and {
                    "code": last_error.code,
                    "message": last_error.message,
                    "at": last_error.at.isoformat(),
                },
            }
        )
    return json_reply({"sources": sources})
