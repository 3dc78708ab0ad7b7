"""Logging: every line carries the id of the request it was written for.

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
