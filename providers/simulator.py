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

from providers import simulator_data as data

PROVIDERS = ("newsapi", "guardian", "hackernews")
FAULT_KINDS = ("status", "latency", "malformed", "wrong_shape", "hang")
HANG_LIMIT_SECONDS = 120.0

NEWSAPI_ERRORS = {
    400: ("parameterInvalid", "You've included a parameter in your request which is invalid."),
    401: ("apiKeyInvalid", "Your API key is invalid or incorrect."),
    426: ("maximumResultsReached", "You have requested too many results."),
    429: ("rateLimited", "You have been rate limited. Back off for a while."),
}


@dataclass(frozen=True)
class Fault:
    kind: str  # one of FAULT_KINDS
    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


def _error_body(provider: str, status: int) -> dict[str, Any]:
    """The body each upstream really sends with an error status."""
    if provider == "newsapi":
        code, message = NEWSAPI_ERRORS.get(status, ("unexpectedError", "Something went wrong."))
        return {"status": "error", "code": code, "message": message}
    if provider == "guardian" and status not in (401, 403, 429):
        return {"response": {"status": "error", "message": "Internal error"}}
    return {
        "message": {401: "Unauthorized", 403: "Forbidden", 429: "API rate limit exceeded"}.get(
            status, "Internal Server Error"
        )
    }


def _first(query: dict[str, list[str]], name: str, default: str = "") -> str:
    return query.get(name, [default])[0]


def _matches(text: str | None, q: str) -> bool:
    return not q or (text is not None and q.lower() in text.lower())


class Simulator:
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
        assert self._server is not None, "start() the simulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, provider: str) -> str:
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
        if not api_key:
            return 401, {
                "status": "error",
                "code": "apiKeyMissing",
                "message": "Your API key is missing.",
            }
        if api_key != self.newsapi_key:
            # Like the real one, the message quotes the key: newsagg must never echo it.
            return 401, {
                "status": "error",
                "code": "apiKeyInvalid",
                "message": f"Your API key ({api_key}) is invalid or incorrect.",
            }
        q, category = _first(query, "q"), _first(query, "category")
        if path == "/v2/top-headlines":
            if not (q or category or _first(query, "language") or _first(query, "country")):
                return 400, {
                    "status": "error",
                    "code": "parametersMissing",
                    "message": "Required parameters are missing.",
                }
        elif path == "/v2/everything":
            if not q:
                return 400, {
                    "status": "error",
                    "code": "parametersMissing",
                    "message": "Required parameters are missing: q.",
                }
        else:
            return 404, {"status": "error", "code": "unexpectedError", "message": "Not found."}
        items = []
        for article in data.newsapi_articles(data.now_utc()):
            article = dict(article)
            article_category = article.pop("category")
            if category and article_category != category:
                continue
            if not (_matches(article["title"], q) or _matches(article["description"], q)):
                continue
            if path == "/v2/everything":
                article["title"] = article["title"].rsplit(" - ", 1)[0]  # no suffix there
            items.append(article)
        size = min(int(_first(query, "pageSize", "20") or 20), 100)
        return 200, {"status": "ok", "totalResults": len(items), "articles": items[:size]}

    def guardian(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
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
        size = min(int(_first(query, "page-size", "10") or 10), 50)
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
        if path not in ("/api/v1/search_by_date", "/api/v1/search"):
            return 404, {"message": "Not Found"}
        q, tags = _first(query, "query"), _first(query, "tags")
        page = int(_first(query, "page", "0") or 0)
        per_page = min(int(_first(query, "hitsPerPage", "20") or 20), 1000)
        bounds = [b for b in _first(query, "numericFilters").split(",") if b]
        hits = [
            h
            for h in data.hackernews_hits(data.now_utc())
            if ("story" in h["_tags"] or tags != "story")
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
        if page * per_page >= 1000:
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
        if fault.kind == "latency":
            return self.sim.wait_or_stop(fault.delay)
        if fault.kind == "hang":
            self.sim.wait_or_stop(HANG_LIMIT_SECONDS)
            self.close_connection = True
            return True
        if fault.kind == "status":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            self._send(fault.status, _error_body(provider, fault.status), headers)
        elif fault.kind == "malformed":
            self._send(200, None, raw=b'{"status": "ok", "articles": [{"title": "trunc')
        else:  # wrong_shape
            self._send(200, ["this", "is", "not", "the", "shape"])
        return True
