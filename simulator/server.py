"""The upstream simulator: NewsAPI, the Guardian and Hacker News (Algolia) on loopback.

Real HTTP, each provider's real response shapes, quirks, query language (NewsAPI and the
Guardian: boolean q, see simulator.query; Algolia: advancedSyntax), article bodies and
paging (see simulator.data), with faults injected per provider, quotas, new stories and
recorded answers of the real upstreams replayed (`replay`, see simulator.replay) — from
Python (`set_fault`, `set_quota`, `publish`, `replay`) or, but for replays, over HTTP for
another process:
    PUT    /_sim/faults/{provider}   body: {"kind": "status", "status": 429, "retry_after": 30}
    DELETE /_sim/faults              also ends every replay
    GET    /_sim/calls               {"newsapi": 3, "guardian": 3, "hackernews": 2}
    DELETE /_sim/calls               also frees what the quotas have used up
    PUT    /_sim/quota/{provider}    body: {"per_day": 5} (null: no limit); NewsAPI starts
                                     at its free plan's 100, then answers 429 rateLimited
    POST   /_sim/stories/{provider}  body: {"title": …, "description": …, "category": …,
                                     "section": …, "published_at": ISO 8601, "body": …}
                                     → 201, the story
`Simulator(ticker_seconds=N)` also publishes an invented story to a random provider every
N seconds. Demo mode and the tests both use it; the providers are pointed at
`base_url(name)`.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from simulator import data
from simulator.query import (
    Document,
    Matcher,
    QuerySyntaxError,
    Tree,
    algolia_query,
    canonical,
    compile_tree,
    document,
    parse_boolean,
)
from simulator.replay import Recording, Replay, served_fields, shifted, show_fields

# The upstreams the simulator stands for, each served under /{name}.
PROVIDERS = ("newsapi", "guardian", "hackernews")
REPLAYABLE = ("newsapi", "guardian")  # the upstreams recordings can be replayed for
FAULT_KINDS = ("status", "latency", "malformed", "wrong_shape", "hang")
HANG_LIMIT_SECONDS = 120.0
DAY_SECONDS = 86_400.0
NEWSAPI_FREE_PER_DAY = 100  # the Developer plan's requests per rolling 24 hours
NEWSAPI_RESULTS_LIMIT = 100  # the Developer plan's results per query (426 past them)
ALGOLIA_HITS_LIMIT = 1000

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


def _error_body(provider: str, status: int, message: str | None = None) -> dict[str, Any]:
    """The body each upstream really sends with an error status (`message`: why, if known)."""
    if provider == "newsapi":
        code, default = NEWSAPI_ERRORS.get(status, ("unexpectedError", "Something went wrong."))
        return _newsapi_error(code, message or default)
    if provider == "guardian" and status not in (401, 403, 429):
        return {"response": {"status": "error", "message": message or "Internal error"}}
    return {
        "message": message
        or {401: "Unauthorized", 403: "Forbidden", 429: "API rate limit exceeded"}.get(
            status, "Internal Server Error"
        )
    }


def _quota_refusal(provider: str, per_day: int | None) -> dict[str, Any]:
    """The 429 body once a provider's daily quota is used up."""
    if provider != "newsapi":
        return _error_body(provider, 429)
    return _newsapi_error(
        "rateLimited",
        f"You have made too many requests recently. Developer accounts are limited to "
        f"{per_day} requests over a 24 hour period. Please upgrade to a paid plan if you "
        f"need more requests.",
    )


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


def _int(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    """A numeric parameter clamped to what the upstream accepts; ValueError if not a number."""
    return max(low, min(int(_first(query, name) or default), high))


def _moment(value: str) -> datetime:
    """An ISO 8601 date-time, as the upstreams document their time parameters and fields
    (`Z` or an offset; none is UTC), as an aware UTC datetime; ValueError if it is none."""
    # fromisoformat takes any fraction and `Z`, but only upper-case `T` and `Z`.
    moment = datetime.fromisoformat(value.strip().upper())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bound_time(value: str, end_of_day: bool) -> str:
    """A from/to bound (a date or a date-time) or a timestamp in the data, as a comparable
    RFC 3339 UTC string; a date bound takes its whole day."""
    if len(value) == 10:
        value += "T23:59:59Z" if end_of_day else "T00:00:00Z"
    # isoformat, not strftime: glibc's %Y writes year 366 as "366", which sorts wrongly.
    return _moment(value).replace(tzinfo=None).isoformat() + "Z"


class Simulator:
    """The three upstreams on one loopback port, each under its own path prefix."""

    def __init__(
        self,
        newsapi_key: str = "demo-newsapi-key",
        guardian_key: str = "demo-guardian-key",
        *,
        newsapi_quota: int | None = NEWSAPI_FREE_PER_DAY,
        ticker_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.newsapi_key = newsapi_key
        self.guardian_key = guardian_key
        self._faults: dict[str, Fault] = {}
        self._calls = dict.fromkeys(PROVIDERS, 0)
        # Per provider: calls allowed per rolling day (None: no limit), and when the calls
        # the quota let through were made.
        self._quotas: dict[str, int | None] = dict.fromkeys(PROVIDERS)
        self._quota_calls: dict[str, deque[float]] = {name: deque() for name in PROVIDERS}
        self._published: dict[str, list[dict[str, Any]]] = {name: [] for name in PROVIDERS}
        # Recordings answering their q (keyed on provider, endpoint and the q's canonical
        # form), and the articles of those replayed as_harvest, listed with the own data.
        self._replays: dict[tuple[str, str, Tree], Replay] = {}
        self._pools: dict[str, list[dict[str, Any]]] = {name: [] for name in REPLAYABLE}
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ticker_seconds = _check_ticker(ticker_seconds)
        self._ticker: threading.Thread | None = None
        self.set_quota("newsapi", newsapi_quota)

    # -- lifecycle --------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve in a background thread; port 0 picks a free one (see `url`)."""
        simulator = self

        class Handler(_Handler):
            sim = simulator

        self._stopping.clear()
        self._server = _Server((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="upstream-simulator", daemon=True
        )
        self._thread.start()
        if self._ticker_seconds is not None:
            self._ticker = threading.Thread(
                target=self._tick, args=(self._ticker_seconds,), name="sim-ticker", daemon=True
            )
            self._ticker.start()

    def stop(self) -> None:
        """Stop serving; returns promptly, hanging requests included."""
        self._stopping.set()  # releases hanging requests and ends the ticker
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)  # a daemon: never holds up the process's exit
            self._ticker = None

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
        _check_provider(provider)
        with self._lock:
            self._faults[provider] = fault

    def clear_faults(self) -> None:
        """Back to normal answers: no faults, and no replays either (the tests' conftest
        calls this around every test, so no recording outlives the test that replayed it)."""
        with self._lock:
            self._faults.clear()
        self.clear_replays()

    def fault(self, provider: str) -> Fault | None:
        with self._lock:
            return self._faults.get(provider)

    def calls(self, provider: str) -> int:
        with self._lock:
            return self._calls[provider]

    def reset_calls(self) -> None:
        """Zero the call counts, and with them what the quotas have used up."""
        with self._lock:
            self._calls = dict.fromkeys(PROVIDERS, 0)
            for made in self._quota_calls.values():
                made.clear()

    def count_call(self, provider: str) -> bool:
        """Count a call; False when the provider's quota refuses it (refusals count as calls
        but use up no quota, so a client that backs off gets served again)."""
        now = self._clock()
        with self._lock:
            self._calls[provider] += 1
            made, limit = self._quota_calls[provider], self._quotas[provider]
            while made and made[0] <= now - DAY_SECONDS:  # the rolling day moves on
                made.popleft()
            if limit is not None and len(made) >= limit:
                return False
            made.append(now)
            return True

    def set_quota(self, provider: str, per_day: int | None) -> None:
        """Calls a provider answers per rolling day before it refuses with 429 (None: no
        limit). NewsAPI starts at the free plan's 100; the others at no limit."""
        _check_provider(provider)
        if per_day is not None and (
            isinstance(per_day, bool) or not isinstance(per_day, int) or per_day < 0
        ):
            raise ValueError("per_day must be a non-negative integer or null")
        with self._lock:
            self._quotas[provider] = per_day

    def quota(self, provider: str) -> int | None:
        with self._lock:
            return self._quotas[provider]

    def wait_or_stop(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the simulator is stopping."""
        return self._stopping.wait(seconds)

    def publish(
        self,
        provider: str,
        *,
        title: str,
        description: str | None = None,
        category: str | None = None,
        section: str | None = None,
        published_at: datetime | None = None,
        body: str | None = None,
    ) -> dict[str, Any]:
        """Add a story to a provider's data set and return it as that provider serves it.
        `category` is NewsAPI's (default general; for the Guardian it picks a section),
        `section` the Guardian's; published now by default, so it is the newest (returned
        without the Guardian's `bodyText`, as served unless asked for). `body` is
        the article's text (default: one invented from a few stock sentences): the
        Guardian's `fields.bodyText`, NewsAPI's `content` once cut as NewsAPI cuts it;
        a Hacker News story has none (its text is `description`)."""
        _check_provider(provider)
        if not isinstance(title, str) or not title.strip():
            raise ValueError("title must be a non-empty string")
        if category is not None and category not in data.CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(data.CATEGORIES)}")
        if body is not None and (provider == "hackernews" or not isinstance(body, str)):
            raise ValueError("body must be a string, and Hacker News stories have none")
        published = (published_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        with self._lock:
            number = sum(len(stories) for stories in self._published.values())
            if provider == "newsapi":
                story = data.newsapi_story(
                    title, description, category or "general", published, number, body
                )
            elif provider == "guardian":
                chosen = section or data.SECTIONS[category or "general"]
                story = data.guardian_story(title, description, chosen, published, number, body)
            else:
                story = data.hackernews_story(title, description, published, number)
            self._published[provider].append(story)
        # As served to a request that does not ask for the body text (newsagg's, by default).
        return served_fields({k: v for k, v in story.items() if k != "category"}, set())

    def replay(
        self,
        recording: Recording | dict[str, Any],
        *,
        as_harvest: bool = False,
        within: timedelta | None = None,
    ) -> Replay:
        """From now on, answer a request for the recording's q at its endpoint with its
        body: page 1 the recorded articles, later pages none. The q matches in any spelling
        of the same query (newsagg asks `"economics" OR "finance"` for `economics OR
        finance`). Publication times move so the newest is a few minutes old, spacing kept
        (shrunk to fit `within`, if given and exceeded). `as_harvest`: the articles also join
        the provider's own data set, so the listings a harvest reads (the Guardian's
        /search without q, NewsAPI's top headlines, every category) hold them. Returns the
        replay, its articles as served. Raises ValueError for a recording it cannot serve."""
        if not isinstance(recording, Recording):
            recording = Recording.from_json(recording)
        tree = parse_boolean(recording.q, signs=recording.provider == "newsapi")
        replay = Replay(recording, shifted(recording, datetime.now(UTC), within))
        with self._lock:
            self._replays[(recording.provider, recording.endpoint, canonical(tree))] = replay
            if as_harvest:
                self._pools[recording.provider].extend(replay.items)
        return replay

    def clear_replays(self) -> None:
        with self._lock:
            self._replays.clear()
            for pool in self._pools.values():
                pool.clear()

    def _replayed(self, provider: str, path: str, tree: Tree) -> Replay | None:
        with self._lock:
            replay = self._replays.get((provider, path, canonical(tree)))
            if replay is not None:
                replay.served += 1
            return replay

    def _pool(self, provider: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._pools[provider])

    def _published_newest_first(self, provider: str, key: str) -> list[dict[str, Any]]:
        with self._lock:
            stories = list(self._published[provider])
        return sorted(stories, key=lambda story: story[key], reverse=True)

    def _tick(self, seconds: float) -> None:
        """Publish an invented story to a random provider every `seconds`, until stop()."""
        rng = random.Random()
        while not self._stopping.wait(seconds):
            self.publish(rng.choice(PROVIDERS), **data.invented_story(rng))

    # -- normal answers ---------------------------------------------------------------

    def newsapi(
        self, path: str, query: dict[str, list[str]], api_key: str | None
    ) -> tuple[int, Any]:
        """NewsAPI's answer (status, body) to a request that carries no fault."""
        refusal = self._newsapi_refusal(path, query, api_key)
        if refusal is not None:
            return refusal
        try:
            tree = parse_boolean(_first(query, "q"), signs=True)
        except QuerySyntaxError as exc:
            return 400, _newsapi_error("parameterInvalid", f"The q parameter is invalid: {exc}.")
        size, page = _int(query, "pageSize", 20, 1, 100), _int(query, "page", 1, 1, 10_000)
        if page * size > NEWSAPI_RESULTS_LIMIT:
            return 426, _newsapi_error(
                "maximumResultsReached",
                f"You have requested too many results. Developer accounts are limited to a "
                f"max of {NEWSAPI_RESULTS_LIMIT} results.",
            )
        replayed = self._replayed("newsapi", path, tree)
        if replayed is not None:
            return 200, replayed.newsapi_page(page)
        items = self._newsapi_items(path, query, compile_tree(tree))
        return 200, {
            "status": "ok",
            "totalResults": len(items),
            "articles": items[(page - 1) * size : page * size],
        }

    def _newsapi_refusal(
        self, path: str, query: dict[str, list[str]], api_key: str | None
    ) -> tuple[int, Any] | None:
        """What NewsAPI answers before it searches: a refused key, path or combination of
        parameters, or the empty answer top-headlines gives outside the US."""
        if not api_key:
            return 401, _newsapi_error("apiKeyMissing", "Your API key is missing.")
        if api_key != self.newsapi_key:
            # Like the real one, the message quotes the key: newsagg must never echo it.
            return 401, _newsapi_error(
                "apiKeyInvalid", f"Your API key ({api_key}) is invalid or incorrect."
            )
        if path == "/v2/top-headlines":
            refusal = _top_headlines_refusal(query)
            if refusal is not None:
                return refusal
            # As the live service behaves since 2023: nothing at all with `language` (not a
            # top-headlines parameter), and without `sources` nothing outside country=us.
            if "language" in query or (
                not _first(query, "sources") and _first(query, "country") != "us"
            ):
                return 200, {"status": "ok", "totalResults": 0, "articles": []}
            return None
        if path == "/v2/everything":
            # q is what scopes a search here (newsagg sends neither `sources` nor `domains`,
            # the other ways), and a blank q scopes nothing.
            if not _first(query, "q").strip():
                return 400, _newsapi_error(
                    "parametersMissing",
                    "Required parameters are missing, the scope of your search is too broad.",
                )
            return None
        return 404, {"status": "error", "code": "unexpectedError", "message": "Not found."}

    def _newsapi_items(
        self, path: str, query: dict[str, list[str]], matches: Matcher
    ) -> list[dict[str, Any]]:
        """Every article a search finds: published stories, then replayed recordings'
        articles (as_harvest), then the bundled data set."""
        category = _first(query, "category")
        sources = {s for s in _first(query, "sources").split(",") if s}
        start = _bound_time(_first(query, "from", "0001-01-01"), end_of_day=False)
        end = _bound_time(_first(query, "to", "9999-12-31"), end_of_day=True)
        everything = path == "/v2/everything"
        items = []
        published = self._published_newest_first("newsapi", "publishedAt")
        for article in published + data.newsapi_articles(data.now_utc()):
            article = dict(article)
            article_category = article.pop("category")
            headline = article["title"].rsplit(" - ", 1)[0]  # the publisher is no search text
            if category and article_category != category:
                continue
            if sources and article["source"]["id"] not in sources:
                continue
            if not matches(document(headline, article["description"])):
                continue
            if everything:
                if not _published_within(article["publishedAt"], start, end):
                    continue  # only /v2/everything takes from/to
                article["title"] = headline  # no suffix there
            items.append(article)
        # A recording's articles carry no category: they are in every one.
        pooled = [
            article
            for article in self._pool("newsapi")
            if (not sources or (article.get("source") or {}).get("id") in sources)
            and matches(document(article.get("title"), article.get("description")))
            and (not everything or _published_within(article.get("publishedAt"), start, end))
        ]
        items[len(published) : len(published)] = pooled
        if everything and _first(query, "sortBy", "publishedAt") == "publishedAt":
            items.sort(key=lambda a: _bound_time(a["publishedAt"], False), reverse=True)
        return items

    def guardian(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """The Guardian's answer (status, body) to a request that carries no fault."""
        if _first(query, "api-key") != self.guardian_key:
            return 401, {"message": "Unauthorized"}
        if path != "/search":
            return 404, {"response": {"status": "error", "message": "Not found"}}
        q = _first(query, "q")
        tree = parse_boolean(q, signs=False)
        fields = show_fields(query["show-fields"][0] if "show-fields" in query else None)
        size, page = _int(query, "page-size", 10, 1, 200), _int(query, "page", 1, 1, 10_000)
        replayed = self._replayed("guardian", path, tree)
        if replayed is not None:
            return 200, replayed.guardian_page(page, size, fields)
        results = self._guardian_results(query, compile_tree(tree))
        order = _first(query, "order-by") or ("relevance" if q else "newest")
        if order in ("newest", "oldest"):
            results.sort(
                key=lambda r: _bound_time(r["webPublicationDate"], False),
                reverse=order == "newest",
            )
        pages = max(1, -(-len(results) // size))
        if page > pages:
            raise ValueError("requested page is beyond the number of available pages")
        return 200, {
            "response": {
                "status": "ok",
                "userTier": "developer",
                "total": len(results),
                "startIndex": (page - 1) * size + 1,
                "pageSize": size,
                "currentPage": page,
                "pages": pages,
                "orderBy": order,
                "results": [
                    served_fields(r, fields) for r in results[(page - 1) * size : page * size]
                ],
            }
        }

    def _guardian_results(
        self, query: dict[str, list[str]], matches: Matcher
    ) -> list[dict[str, Any]]:
        """Every result a search finds, in sections asked and dates asked: published
        stories, replayed recordings' results (as_harvest), then the bundled data set. As
        the real Guardian, q searches the body text too, whatever show-fields asks for."""
        sections = _first(query, "section")
        wanted = set(sections.split("|")) if sections else None
        start = _bound_time(_first(query, "from-date", "0001-01-01"), end_of_day=False)
        end = _bound_time(_first(query, "to-date", "9999-12-31"), end_of_day=True)
        stories = self._published_newest_first("guardian", "webPublicationDate")
        return [
            r
            for r in stories + self._pool("guardian") + data.guardian_results(data.now_utc())
            if (wanted is None or r.get("sectionId") in wanted)
            and matches(_searched(r))
            and _published_within(r.get("webPublicationDate"), start, end)
        ]

    def hackernews(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """Algolia's answer (status, body) to a request that carries no fault."""
        if path not in ("/api/v1/search_by_date", "/api/v1/search"):
            return 404, {"message": "Not Found"}
        q = _first(query, "query")
        matches = algolia_query(q)
        tags = [t for t in _first(query, "tags").split(",") if t]  # comma: AND
        page = _int(query, "page", 0, 0, 10_000)
        per_page = _int(query, "hitsPerPage", 20, 1, 1000)
        bounds = [b for b in _first(query, "numericFilters").split(",") if b]
        stories = self._published_newest_first("hackernews", "created_at_i")
        hits = [
            h
            for h in stories + data.hackernews_hits(data.now_utc())
            if all(t in h["_tags"] for t in tags)  # without tags=story, comments come too
            and matches(document(h["title"], h["story_text"]))
            and all(_numeric_filter(h, b) for b in bounds)
        ]
        if path == "/api/v1/search_by_date":
            hits.sort(key=lambda h: h["created_at_i"], reverse=True)
        body: dict[str, Any] = {
            "hits": hits[page * per_page : (page + 1) * per_page],
            "nbHits": len(hits),
            "page": page,
            "nbPages": -(-min(len(hits), ALGOLIA_HITS_LIMIT) // per_page),
            "hitsPerPage": per_page,
            "query": q,
            "params": "",
        }
        if page > 0 and page * per_page >= min(len(hits), ALGOLIA_HITS_LIMIT):
            # Algolia serves at most 1000 hits; a page past those (or past the last) is a
            # 200 with no hits and a message, not an error.
            body["hits"] = []
            body["message"] = "you can only fetch the 1000 hits for this query"
        return 200, body


def _published_within(stamp: Any, start: str, end: str) -> bool:
    """Whether a publication time falls in [start, end]; an unreadable one never does."""
    try:
        return start <= _bound_time(str(stamp), False) <= end
    except ValueError:
        return False


def _searched(result: dict[str, Any]) -> Document:
    """What the Guardian's q searches in a result: its headline, trail text and body."""
    fields = result.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    texts = (result.get("webTitle"), fields.get("trailText"), fields.get("bodyText"))
    return document(*(t for t in texts if isinstance(t, str)))


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}")


def _check_ticker(seconds: float | None) -> float | None:
    if seconds is not None and not seconds > 0:
        raise ValueError("ticker_seconds must be positive")
    return seconds


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stopped waiting (its upstream timeout ran out) is what a real
        # upstream sees every day; anything else is the simulator's bug: print it.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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

    def _control(self, kind: str) -> str | None:
        """The provider a /_sim/{kind}/{provider} path names; None (after a 404) if none."""
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[:2] == ["_sim", kind] and len(parts) == 3 and parts[2] in PROVIDERS:
            return parts[2]
        self._send(404, {"message": "Not Found"})
        return None

    def _run_control(self, action: Callable[[Any], Any], status: int = 200) -> None:
        """Apply a JSON body to a control action: 400 with the reason if it refuses it."""
        try:
            body = self._read_json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            result = action(body)
        except (TypeError, ValueError) as exc:
            self._send(400, {"message": str(exc)})
            return
        self._send(status, result)

    def do_PUT(self) -> None:
        if urlsplit(self.path).path.startswith("/_sim/quota/"):
            if (provider := self._control("quota")) is not None:
                self._run_control(lambda body: self._set_quota(provider, **body))
        elif (provider := self._control("faults")) is not None:
            self._run_control(lambda body: self._set_fault(provider, Fault(**body)))

    def do_POST(self) -> None:
        if (provider := self._control("stories")) is not None:
            self._run_control(lambda body: self._publish(provider, **body), status=201)

    def _set_quota(self, provider: str, per_day: int | None) -> dict[str, Any]:
        self.sim.set_quota(provider, per_day)
        return {"per_day": per_day}

    def _set_fault(self, provider: str, fault: Fault) -> dict[str, Any]:
        self.sim.set_fault(provider, fault)
        return asdict(fault)

    def _publish(
        self, provider: str, published_at: str | None = None, **story: Any
    ) -> dict[str, Any]:
        moment = None if published_at is None else _moment(published_at)
        return self.sim.publish(provider, published_at=moment, **story)

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
        if not self.sim.count_call(provider):
            self._send(429, _quota_refusal(provider, self.sim.quota(provider)))
            return
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
        except ValueError as exc:  # a parameter the upstream refuses: say which, as it does
            status, body = 400, _error_body(provider, 400, str(exc))
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
