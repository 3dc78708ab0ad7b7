"""GET /metrics (admin keys only: x-newsagg-admin in the spec)."""

from __future__ import annotations

from connexion.lifecycle import ConnexionResponse

from newsagg.metrics import CONTENT_TYPE
from newsagg.service import Service


async def get_metrics(service: Service) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=200,
        content_type=CONTENT_TYPE,
        mimetype="text/plain",
        body=service.metrics.exposition(),
    )
