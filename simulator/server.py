"""The upstream simulator: NewsAPI, the Guardian and Hacker News (Algolia) on loopback.

Real HTTP, each provider's real response shapes and quirks (see simulator_data), with
faults injected per provider — from Python (`set_fault`) or over HTTP for another process:
    PUT    /_sim/faults/{provider}   body: {"kind": "status", "status": 429, "retry_after": 30}
    DELETE /_sim/faults
    GET    /_sim/calls               {"newsapi": 3, "guardian": 3, "hackernews": 2}
    DELETE /_sim/calls
Demo mode and the tests both use it; the providers are pointed at `base_url(name)`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from providers.base import PROVIDER_NAMES
from providers.text import parse_timestamp
from simulator import data

PROVIDERS = PROVIDER_NAMES
FAULT_KINDS = ("status", "latency", "malformed", "wrong_shape", "hang")
HANG_LIMIT_SECONDS = 120.0

WRONG_SHAPES: dict[str, Any] = {
    "newsapi": {"status": "ok", "totalResults": 1, "articles": "nope"},
    "guardian": {"response": {"status": "ok", "results": {"0": "nope"}}},
    "hackernews": ["this", "is", "not", "the", "shape"],
}

NEWSAPI_ERRORS = {
    400: ("parameterInvalid", "You've included a parameter in your request which is invalid."),
    401: ("apiKeyInvalid", "Your API key is invalid or incorrect."),
    426: ("maximumResultsReached", "You have requested too many results."),
    429: ("rateLimited", "You have been rate limited. Back off for a while."),
}


@dataclass(frozen=True)
class Fault:
    """What one provider does instead of answering normally, until the faults are cleared."""

    kind: str  # one of FAULT_KINDS
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        """Refuse what the handler could not act out (this also checks the HTTP control)."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError("status must be an error status, 400-599")
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError("retry_after must be a non-negative integer")
        if not isinstance(self.delay, int | float) or not 0 <= self.delay <= HANG_LIMIT_SECONDS:
            raise ValueError(f"delay must be between 0 and {HANG_LIMIT_SECONDS:g} seconds")


def _error_body(provider: str, status: int) -> dict[str, Any]:
    """The body each upstream really sends with an error status."""
    if provider == "newsapi":
        return _newsapi_error(
            *NEWSAPI_ERRORS.get(status, ("unexpectedError", "Something went wrong."))
        )
    if provider == "guardian" and status not in (401, 403, 429):
        return {"response": {"status": "error", "message": "Internal error"}}
    return {
        "message": {401: "Unauthorized", 403: "Forbidden", 429: "API rate limit exceeded"}.get(
            status, "Internal Server Error"
        )
    }


def _newsapi_error(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "code": code, "message": message}


def _top_headlines_refusal(query: dict[str, list[str]]) -> tuple[int, Any] | None:
    """The 400 NewsAPI gives a top-headlines request for its combination of parameters."""
    scope = {name for name in ("country", "category", "sources", "q") if _first(query, name)}
    if "sources" in scope and scope & {"country", "category"}:
        return 400, _newsapi_error(
            "parametersIncompatible",
            "You cannot mix the sources parameter with the country or category parameters.",
        )
    if not scope:
        return 400, _newsapi_error(
            "parametersMissing",
            "Required parameters are missing. Please set any of the following parameters "
            "and try again: sources, q, country, category.",
        )
    return None


def _first(query: dict[str, list[str]], name: str, default: str = "") -> str:
    return query.get(name, [default])[0]


def _matches(text: str | None, q: str) -> bool:
    return not q or (text is not None and q.lower() in text.lower())


def _int(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    """A numeric parameter clamped to what the upstream accepts; ValueError if not a number."""
    return max(low, min(int(_first(query, name) or default), high))


def _newsapi_time(value: str, end_of_day: bool) -> str:
    """NewsAPI's from/to: a date or a date-time, as a comparable RFC 3339 UTC string."""
    if len(value) == 10:
        value += "T23:59:59Z" if end_of_day else "T00:00:00Z"
    # isoformat, not strftime: glibc's %Y writes year 366 as "366", which sorts wrongly.
    return parse_timestamp(value).replace(tzinfo=None).isoformat() + "Z"


class Simulator:
    """The three upstreams on one loopback port, each under its own path prefix."""

    def __init__(
        self, newsapi_key: str = "demo-newsapi-key", guardian_key: str = "demo-guardian-key"
    ) -> None:
        self.newsapi_key = newsapi_key
        self.guardian_key = guardian_key
        self._faults: dict[str, Fault] = {}
        self._calls = dict.fromkeys(PROVIDERS, 0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve in a background thread; port 0 picks a free one (see `url`)."""
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._stopping.clear()
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="upstream-simulator", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; returns promptly, hanging requests included."""
        self._stopping.set()  # releases hanging requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://host:port of the running simulator."""
        if self._server is None:
            raise RuntimeError("start() the simulator first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, provider: str) -> str:
        """Where to point a provider: its real paths live beneath this prefix."""
        return f"{self.url}/{provider}"

    # -- control ----------------------------------------------------------------------

    def set_fault(self, provider: str, fault: Fault) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}")
        with self._lock:
            self._faults[provider] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def fault(self, provider: str) -> Fault | None:
        with self._lock:
            return self._faults.get(provider)

    def calls(self, provider: str) -> int:
        with self._lock:
            return self._calls[provider]

    def reset_calls(self) -> None:
        with self._lock:
            self._calls = dict.fromkeys(PROVIDERS, 0)

    def count_call(self, provider: str) -> None:
        with self._lock:
            self._calls[provider] += 1

    def wait_or_stop(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the simulator is stopping."""
        return self._stopping.wait(seconds)

    # -- normal answers ---------------------------------------------------------------

    def newsapi(
        self, path: str, query: dict[str, list[str]], api_key: str | None
    ) -> tuple[int, Any]:
        """NewsAPI's answer (status, body) to a request that carries no fault."""
        if not api_key:
            return 401, _newsapi_error("apiKeyMissing", "Your API key is missing.")
        if api_key != self.newsapi_key:
            # Like the real one, the message quotes the key: newsagg must never echo it.
            return 401, _newsapi_error(
                "apiKeyInvalid", f"Your API key ({api_key}) is invalid or incorrect."
            )
        q, category = _first(query, "q"), _first(query, "category")
        sources = {s for s in _first(query, "sources").split(",") if s}
        if path == "/v2/top-headlines":
            refusal = _top_headlines_refusal(query)
            if refusal is not None:
                return refusal
            # As the live service behaves since 2023: nothing at all with `language` (not a
            # top-headlines parameter), and without `sources` nothing outside country=us.
            if "language" in query or (not sources and _first(query, "country") != "us"):
                return 200, {"status": "ok", "totalResults": 0, "articles": []}
        elif path == "/v2/everything":
            # q is what scopes a search here (newsagg sends neither `sources` nor `domains`,
            # the other ways), and a blank q scopes nothing.
            if not q.strip():
                return 400, _newsapi_error(
                    "parametersMissing",
                    "Required parameters are missing, the scope of your search is too broad.",
                )
        else:
            return 404, {"status": "error", "code": "unexpectedError", "message": "Not found."}
        start = _newsapi_time(_first(query, "from", "0001-01-01"), end_of_day=False)
        end = _newsapi_time(_first(query, "to", "9999-12-31"), end_of_day=True)
        items = []
        for article in data.newsapi_articles(data.now_utc()):
            article = dict(article)
            article_category = article.pop("category")
            if category and article_category != category:
                continue
            if sources and article["source"]["id"] not in sources:
                continue
            if not (_matches(article["title"], q) or _matches(article["description"], q)):
                continue
            if path == "/v2/everything":
                if not start <= _newsapi_time(article["publishedAt"], False) <= end:
                    continue  # only /v2/everything takes from/to
                article["title"] = article["title"].rsplit(" - ", 1)[0]  # no suffix there
            items.append(article)
        size = _int(query, "pageSize", 20, 1, 100)
        return 200, {"status": "ok", "totalResults": len(items), "articles": items[:size]}

    def guardian(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """The Guardian's answer (status, body) to a request that carries no fault."""
        if _first(query, "api-key") != self.guardian_key:
            return 401, {"message": "Unauthorized"}
        if path != "/search":
            return 404, {"response": {"status": "error", "message": "Not found"}}
        q, sections = _first(query, "q"), _first(query, "section")
        wanted = set(sections.split("|")) if sections else None
        results = [
            r
            for r in data.guardian_results(data.now_utc())
            if (wanted is None or r["sectionId"] in wanted)
            and (_matches(r["webTitle"], q) or _matches(r.get("fields", {}).get("trailText"), q))
            and _first(query, "from-date", "0000")
            <= r["webPublicationDate"][:10]
            <= _first(query, "to-date", "9999")
        ]
        if "show-fields" not in query:
            results = [{k: v for k, v in r.items() if k != "fields"} for r in results]
        size = _int(query, "page-size", 10, 1, 50)
        return 200, {
            "response": {
                "status": "ok",
                "userTier": "developer",
                "total": len(results),
                "startIndex": 1,
                "pageSize": size,
                "currentPage": 1,
                "pages": max(1, -(-len(results) // size)),
                "orderBy": "newest",
                "results": results[:size],
            }
        }

    def hackernews(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """Algolia's answer (status, body) to a request that carries no fault."""
        if path not in ("/api/v1/search_by_date", "/api/v1/search"):
            return 404, {"message": "Not Found"}
        q = _first(query, "query")
        tags = [t for t in _first(query, "tags").split(",") if t]  # comma: AND
        page = _int(query, "page", 0, 0, 10_000)
        per_page = _int(query, "hitsPerPage", 20, 1, 1000)
        bounds = [b for b in _first(query, "numericFilters").split(",") if b]
        hits = [
            h
            for h in data.hackernews_hits(data.now_utc())
            if all(t in h["_tags"] for t in tags)  # without tags=story, comments come too
            and (_matches(h["title"], q) or _matches(h["story_text"], q))
            and all(_numeric_filter(h, b) for b in bounds)
        ]
        body: dict[str, Any] = {
            "hits": hits[page * per_page : (page + 1) * per_page],
            "nbHits": len(hits),
            "page": page,
            "nbPages": -(-len(hits) // per_page),
            "hitsPerPage": per_page,
            "query": q,
            "params": "",
        }
        if page > 0 and page * per_page >= min(len(hits), 1000):
            # Algolia serves at most 1000 hits; a page past those (or past the last) is a
            # 200 with no hits and a message, not an error.
            body["hits"] = []
            body["message"] = "you can only fetch the 1000 hits for this query"
        return 200, body


def _numeric_filter(hit: dict[str, Any], bound: str) -> bool:
    for op in (">=", "<=", ">", "<", "="):
        name, sep, value = bound.partition(op)
        if sep:
            actual, limit = hit.get(name.strip(), 0), int(value)
            return {
                ">=": actual >= limit,
                "<=": actual <= limit,
                ">": actual > limit,
                "<": actual < limit,
                "=": actual == limit,
            }[op]
    return True


class _Handler(BaseHTTPRequestHandler):
    sim: Simulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body then waits
    # for the client's delayed ACK: 40 ms added to every simulated upstream call.
    disable_nagle_algorithm = True

    def log_message(self, *_args: Any) -> None:
        """Silent: request lines would put the Guardian key (a query parameter) in logs."""

    def _send(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        payload = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_PUT(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[:2] == ["_sim", "faults"] and len(parts) == 3 and parts[2] in PROVIDERS:
            try:
                self.sim.set_fault(parts[2], Fault(**self._read_json()))
            except (TypeError, ValueError) as exc:
                self._send(400, {"message": str(exc)})
                return
            self._send(200, asdict(self.sim.fault(parts[2])))
        else:
            self._send(404, {"message": "Not Found"})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_sim/faults":
            self.sim.clear_faults()
        elif path == "/_sim/calls":
            self.sim.reset_calls()
        else:
            self._send(404, {"message": "Not Found"})
            return
        self._send(200, {})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_sim/calls":
            self._send(200, {name: self.sim.calls(name) for name in PROVIDERS})
            return
        provider, _, rest = url.path.lstrip("/").partition("/")
        if provider not in PROVIDERS:
            self._send(404, {"message": "Not Found"})
            return
        self.sim.count_call(provider)
        fault = self.sim.fault(provider)
        if fault is not None and self._apply(provider, fault):
            return
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if provider == "newsapi":
                status, body = self.sim.newsapi("/" + rest, query, self.headers.get("X-Api-Key"))
            elif provider == "guardian":
                status, body = self.sim.guardian("/" + rest, query)
            else:
                status, body = self.sim.hackernews("/" + rest, query)
        except ValueError:
            status, body = 400, _error_body(provider, 400)
        self._send(status, body)

    def _apply(self, provider: str, fault: Fault) -> bool:
        """Act out a fault; True when it answered (or hung) instead of a normal reply."""
        if fault.kind in ("latency", "hang"):
            delay = fault.delay if fault.kind == "latency" else HANG_LIMIT_SECONDS
            stopping = self.sim.wait_or_stop(delay)
            if fault.kind == "latency" and not stopping:
                return False  # the delay is over: answer normally
            # stop(), or the hang's safety limit: drop the connection without an answer.
            self.close_connection = True
            return True
        if fault.kind == "status":
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            self._send(fault.status, _error_body(provider, fault.status), headers)
        elif fault.kind == "malformed":
            self._send(200, None, raw=b'{"status": "ok", "articles": [{"title": "trunc')
        else:  # wrong_shape: valid JSON, an ok-looking envelope around the wrong types
            self._send(200, WRONG_SHAPES[provider])
        return True
