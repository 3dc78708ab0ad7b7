"""GET /health."""

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply
from newsagg import __version__
from newsagg.service import Service


def get_health(service: Service) -> ConnexionResponse:
    """A plain function: with Redis configured it asks Redis (briefly), so Connexion runs it
    off the event loop. Degraded is still 200: the instance answers every request."""
    degraded = service.degraded()
    if degraded:
        return json_reply({"status": "degraded", "version": __version__, "degraded": degraded})
    return json_reply({"status": "ok", "version": __version__})
