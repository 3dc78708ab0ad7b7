"""GET /health."""

from connexion.lifecycle import ConnexionResponse

from edge.replies import json_reply
from newsagg import __version__


async def get_health() -> ConnexionResponse:
    return json_reply({"status": "ok", "version": __version__})
