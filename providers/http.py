"""One pooled HTTP session per provider, a total time budget per call, safe error messages.

`requests` exceptions embed the URL, and the Guardian key travels in the query string, so
no message built here ever includes a URL, a query string or an upstream body.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from providers.base import BeforeCall, Query, UpstreamError

MAX_BODY_BYTES = 5 * 1024 * 1024
CONNECT_TIMEOUT_CAP = 3.05
MAX_RETRIES = 2
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_BASE_SECONDS = 0.1
# An upstream's own error code is echoed in messages only when it looks like one
# ("rateLimited"): anything else it sends could be text we must not pass on.
_UPSTREAM_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}", re.ASCII)

# urllib3 logs every request line, query string included, at DEBUG: with the Guardian key
# in the query that would put a credential in the log of anyone who turns on debug logging.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream answer, any status: each provider reads its own error bodies."""

    status: int
    payload: Any  # decoded JSON
    retry_after: float | None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": HTTP dates are GMT anyway
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - time.time())


class UpstreamClient:
    """One provider's pooled connections and its GET-and-decode with a total time budget."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "newsagg/1"

    def get_json(
        self,
        path: str,
        params: dict[str, Any],
        headers: dict[str, str],
        timeout: float,
        before_call: BeforeCall,
    ) -> Reply:
        """GET and decode JSON, whatever the status; retries 502/503/504 and connection
        errors with jittered exponential backoff, all within `timeout` seconds in total.
        `before_call()` runs before each attempt (each is a call the upstream counts)."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(timeout)
            before_call()
            try:
                reply = self._attempt(path, params, headers, deadline)
            except requests.Timeout:
                raise self._timeout(timeout) from None
            except requests.ConnectionError:
                # A read timeout while streaming the body surfaces as a ConnectionError.
                if time.monotonic() >= deadline - 0.01:
                    raise self._timeout(timeout) from None
                if not self._may_retry(attempt, deadline):
                    raise UpstreamError(
                        "upstream_unreachable", f"could not connect to {self.name}"
                    ) from None
            except (
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ):
                raise UpstreamError(
                    "upstream_bad_response", f"{self.name} sent a broken answer"
                ) from None
            except requests.RequestException:
                raise UpstreamError(
                    "upstream_error", f"the request to {self.name} failed"
                ) from None
            else:
                if reply.status not in RETRY_STATUSES or not self._may_retry(attempt, deadline):
                    return reply
            attempt += 1

    def _may_retry(self, attempt: int, deadline: float) -> bool:
        """Sleep before the next attempt if one is allowed and fits the budget."""
        if attempt >= MAX_RETRIES:
            return False
        pause = random.uniform(0, BACKOFF_BASE_SECONDS * 2**attempt)  # full jitter
        if time.monotonic() + pause >= deadline:
            return False
        time.sleep(pause)
        return True

    def _timeout(self, timeout: float) -> UpstreamError:
        return UpstreamError(
            "upstream_timeout", f"{self.name} did not answer within {timeout:g} seconds"
        )

    def _attempt(
        self, path: str, params: dict[str, Any], headers: dict[str, str], deadline: float
    ) -> Reply:
        remaining = deadline - time.monotonic()
        with self.session.get(
            self.base_url + path,
            params=params,
            headers=headers,
            timeout=(min(CONNECT_TIMEOUT_CAP, remaining), remaining),
            stream=True,  # in chunks: the size is capped and the deadline checked between them
            # A redirect would carry the key (header or query) to wherever it points.
            allow_redirects=False,
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    break
                if time.monotonic() > deadline:
                    raise requests.Timeout()
            status, retry_after = response.status_code, response.headers.get("Retry-After")
        if len(body) > MAX_BODY_BYTES:
            raise UpstreamError("upstream_bad_response", f"{self.name} sent an oversized answer")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                payload = None  # an error page; the status says enough
            else:
                raise UpstreamError(
                    "upstream_bad_response", f"{self.name} answered {status} with invalid JSON"
                ) from None
        return Reply(status, payload, parse_retry_after(retry_after))


def status_error(
    name: str,
    reply: Reply,
    upstream_code: str | None = None,
    query_rejections: frozenset[str] = frozenset(),
) -> UpstreamError:
    """The UpstreamError for an error answer; `upstream_code` is the provider's own code,
    `query_rejections` the provider's codes that fault the request's parameters.

    A 400 (or one of those codes) is about the query, not the upstream's health: it gets
    its own code so that one client's query cannot open the breaker for everyone
    (newsagg.provider_health decides what counts).
    """
    label = f"{name} answered {reply.status}"
    if upstream_code and _UPSTREAM_CODE.fullmatch(upstream_code):
        label += f" ({upstream_code})"
    if reply.status in (401, 403):
        return UpstreamError("upstream_auth_failed", label)
    if reply.status == 429 or upstream_code == "rateLimited":
        return UpstreamError("upstream_rate_limited", label, reply.retry_after)
    # A 5xx is the upstream's trouble whatever code comes with it.
    if reply.status == 400 or (reply.status < 500 and upstream_code in query_rejections):
        return UpstreamError("upstream_rejected_query", label)
    return UpstreamError("upstream_error", label)


class HTTPProvider:
    """What every provider shares: a pooled client, an optional key, the category check."""

    name: str
    categories: frozenset[str]

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self._client = UpstreamClient(self.name, base_url)
        self._api_key = api_key

    @property
    def enabled(self) -> bool:
        """False without the upstream key: the provider is `disabled`, not failing."""
        return bool(self._api_key)

    def serves(self, query: Query) -> bool:
        """Uncategorised queries always; otherwise only the categories it has."""
        return query.category is None or query.category in self.categories
