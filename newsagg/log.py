"""Logging: every line carries the id of the request it was written for, and no line
holds a URL's query string (search text, a feed token).

The edge sets `request_id` for each request; work started for a request (provider fetches
on worker threads) runs in a copy of its context, so its lines carry the id too.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record, for formats that print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class WithoutQueryString(logging.Filter):
    """Cuts the query string off the request target in uvicorn's access lines
    (`"GET /feeds/1?token=... HTTP/1.1" 200`): it may hold a feed token or search text.
    `newsagg serve` turns uvicorn's access log off (newsagg writes its own line, without
    one); this holds for uvicorn run by hand on `edge.app:app_from_env` as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's arguments: client, method, target, HTTP version, status.
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], *args[3:])
        return True


UVICORN_ACCESS = "uvicorn.access"


def without_query_strings() -> None:
    """Put WithoutQueryString on uvicorn's access logger (once per process; the app
    factory does, after uvicorn has configured its logging)."""
    access = logging.getLogger(UVICORN_ACCESS)
    if not any(isinstance(f, WithoutQueryString) for f in access.filters):
        access.addFilter(WithoutQueryString())


def logging_config() -> dict[str, Any]:
    """Access lines are JSON on stdout; everything else is a plain line on stderr."""
    with_id = {"filters": ["request_id"], "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "plain": {
                "format": "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"
            },
            "json_line": {"format": "%(message)s"},
        },
        "handlers": {
            "default": {**with_id, "formatter": "plain", "stream": "ext://sys.stderr"},
            "access": {**with_id, "formatter": "json_line", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "newsagg.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "INFO"},
    }
