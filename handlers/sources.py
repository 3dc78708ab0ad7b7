"""GET /sources."""

from __future__ import annotations

from typing import Any

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply
from newsagg.budget import BudgetStanding
from newsagg.harvest.view import HarvestStanding
from newsagg.service import Service
from newsagg.sources import SourceView


def _source_json(source: SourceView, harvest: HarvestStanding | None) -> dict[str, Any]:
    health, last_error = source.health, source.health.last_error
    return {
        "name": source.name,
        "enabled": source.enabled,
        "categories": list(source.categories),
        "state": source.breaker.state,
        "retry_in_seconds": source.breaker.retry_in_seconds,
        "last_success_at": health.last_success_at and health.last_success_at.isoformat(),
        "last_error": last_error
        and {
            "code": last_error.code,
            "message": last_error.message,
            "at": last_error.at.isoformat(),
        },
        "budget": _budget_json(source.budget),
        "harvest": harvest and _harvest_json(harvest),
    }


def _harvest_json(harvest: HarvestStanding) -> dict[str, Any]:
    error = None
    if harvest.last_error_code is not None:
        error = {"code": harvest.last_error_code, "message": harvest.last_error_message or ""}
    return {
        "last_harvested_at": harvest.last_harvested_at and harvest.last_harvested_at.isoformat(),
        "next_harvest_at": harvest.next_harvest_at and harvest.next_harvest_at.isoformat(),
        "added_last_round": harvest.added_last_round,
        "last_error": error,
    }


def _budget_json(budget: BudgetStanding) -> dict[str, Any]:
    return {
        "limits": [
            {
                "limit": limit.text,
                "amount": limit.amount,
                "window_seconds": limit.window_seconds,
                "used": limit.used,
                "remaining": limit.remaining,
            }
            for limit in budget.limits
        ],
        "next_call_at": budget.next_call_at and budget.next_call_at.isoformat(),
    }


def list_sources(service: Service) -> ConnexionResponse:
    """A plain function: with Redis configured, provider health is read from there, so
    Connexion runs it off the event loop."""
    return json_reply(
        {"sources": [_source_json(source, harvest) for source, harvest in service.sources()]}
    )
