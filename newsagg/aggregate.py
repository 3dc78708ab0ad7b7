"""The feed: fan out to providers in parallel, merge, dedupe, sort newest first, paginate.

Each provider's result for a query is fetched at most once at a time (single-flight), then
gets stable ids from the store and is cached. A provider that fails or does not answer in
time degrades only its own part of the answer: its entry in `sources` says why, and an
expired cached result is served instead when there is one (stale-if-error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cachetools import LRUCache

from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.errors import InvalidInput, Unavailable
from newsagg.metrics import Metrics
from newsagg.provider_health import ProviderHealth
from newsagg.store import Store
from providers.base import Article, Provider, Query, UpstreamError

log = logging.getLogger(__name__)

# When two providers carry the same story, keep the record of the one nearest the source:
# the Guardian publishes its own stories, NewsAPI relays, Hacker News only links.
PROVIDER_PRIORITY = ("guardian", "newsapi", "hackernews")
# Time allowed past the upstream budget for the worker thread to hand its result over.
HANDOVER_GRACE_SECONDS = 0.25
RETRY_AFTER_SECONDS = 30
RENDERED_PAGES = 1024  # pages remembered in their rendered form (see finish_rendered)
R = TypeVar("R")


def article_fields(article: Article) -> dict[str, Any]:
    """The public JSON shape of an article, without its id."""
    return {
        "title": article.title,
        "description": article.description,
        "url": article.url,
        "source": article.source,
        "publisher": article.publisher,
        "author": article.author,
        "image_url": article.image_url,
        "category": article.category,
        "published_at": article.published_at.isoformat(),
    }


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: int
    article: Article
    json: bytes  # the public JSON, serialised once when fetched: cache hits reuse it

    @classmethod
    def of(cls, article_id: int, article: Article) -> FeedItem:
        fields = {"id": article_id, **article_fields(article)}
        return cls(article_id, article, json.dumps(fields, separators=(",", ":")).encode())

    def sort_key(self) -> tuple:
        return (self.article.published_at, self.id)


@dataclass(frozen=True, slots=True)
class FeedRequest:
    query: Query
    sources: tuple[str, ...]  # the providers asked for
    limit: int
    cursor: str | None = None

    def fingerprint(self) -> str:
        q = self.query
        parts = [
            q.category,
            q.q,
            sorted(self.sources),
            q.published_from and q.published_from.isoformat(),
            q.published_to and q.published_to.isoformat(),
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    status: str  # ok, stale, error, skipped, disabled
    article_count: int | None = None
    error: UpstreamError | None = None
    from_cache: bool = False


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[FeedItem]
    cache_status: str  # hit, miss, stale
    next_cursor: str | None
    sources: list[SourceReport] = field(default_factory=list)


@dataclass(slots=True)
class Gathering:
    """One feed request between `Aggregator.start` and `Aggregator.finish`."""

    request: FeedRequest
    position: Position | None
    reports: dict[str, SourceReport] = field(default_factory=dict)
    results: dict[str, Sequence[FeedItem]] = field(default_factory=dict)
    pending: dict[str, Future] = field(default_factory=dict)
    versions: list[tuple[str, float]] = field(default_factory=list)  # cache entries used

    def memo_key(self) -> Hashable | None:
        """Identifies the page when it is made only of cached results, else None."""
        return None if self.pending else (self.request, tuple(self.versions))


def merge(results: dict[str, Sequence[FeedItem]]) -> list[FeedItem]:
    """One list without duplicate URLs, newest first (ties: higher id first)."""
    by_url: dict[str, FeedItem] = {}
    for name in PROVIDER_PRIORITY:
        for item in results.get(name, ()):
            by_url.setdefault(item.article.url, item)
    return sorted(by_url.values(), key=FeedItem.sort_key, reverse=True)


def overall_cache_status(reports: Sequence[SourceReport]) -> str:
    contributing = [r for r in reports if r.status in ("ok", "stale")]
    if any(r.status == "stale" for r in contributing):
        return "stale"
    if contributing and all(r.from_cache for r in contributing):
        return "hit"
    return "miss"


class Aggregator:
    def __init__(
        self,
        providers: Sequence[Provider],
        store: Store,
        cache: ResultCache[tuple[FeedItem, ...]],
        health: ProviderHealth,
        cursors: CursorCodec,
        timeout: float,
        single_flight: Callable[[Any, Callable[[], Any]], Future],
        metrics: Metrics,
    ) -> None:
        self.providers = {p.name: p for p in providers}
        self._store = store
        self._cache = cache
        self._health = health
        self._cursors = cursors
        self._timeout = timeout
        self._single_flight = single_flight
        self._metrics = metrics
        self._rendered: LRUCache[Hashable, Any] = LRUCache(maxsize=RENDERED_PAGES)
        self._rendered_lock = threading.Lock()

    def start(self, request: FeedRequest) -> Gathering:
        """Look in the cache and start the fetches it cannot answer. Never blocks.

        The caller waits for `gathering.pending` (up to `wait_seconds`), then calls `finish`.
        """
        gathering = Gathering(request, self._position(request))
        for name in request.sources:
            provider = self.providers[name]
            if not provider.enabled:
                gathering.reports[name] = SourceReport(name, "disabled")
            elif not provider.serves(request.query):
                gathering.reports[name] = SourceReport(name, "skipped")
            else:
                cached = self._cache.get((name, request.query))
                if cached is not None and cached.fresh:
                    self._metrics.cache_lookups.labels("hit").inc()
                    gathering.versions.append((name, cached.stored_at))
                    gathering.results[name] = cached.value
                    gathering.reports[name] = SourceReport(
                        name, "ok", len(cached.value), from_cache=True
                    )
                else:
                    self._metrics.cache_lookups.labels("miss").inc()
                    gathering.pending[name] = self._single_flight(
                        (name, request.query), lambda p=provider: self._fetch(p, request.query)
                    )
        return gathering

    @property
    def wait_seconds(self) -> float:
        return self._timeout + HANDOVER_GRACE_SECONDS

    def finish(self, gathering: Gathering) -> FeedPage:
        """Collect what the fetches delivered by now, merge and cut the page. Never blocks."""
        request, reports, results = gathering.request, gathering.reports, gathering.results
        for name, future in gathering.pending.items():
            if not future.done():
                # The flight goes on and records its own outcome; this request stops waiting.
                timeout = UpstreamError(
                    "upstream_timeout", f"{name} did not answer within {self._timeout:g} seconds"
                )
                reports[name] = self._failed(name, request.query, timeout, results)
            elif isinstance(future.exception(), UpstreamError):
                reports[name] = self._failed(name, request.query, future.exception(), results)
            else:
                items = future.result()  # any other exception is a bug of ours: let it raise
                results[name] = items
                reports[name] = SourceReport(name, "ok", len(items))
        ordered = [reports[name] for name in request.sources]
        if not results and any(r.status == "error" for r in ordered):
            raise Unavailable(
                "No provider could deliver: "
                + "; ".join(f"{r.name}: {r.error.code}" for r in ordered if r.error)
                + ".",
                retry_after_seconds=self._retry_after(ordered),
            )
        merged = merge(results)
        if gathering.position is not None:
            after = (gathering.position.published_at, gathering.position.article_id)
            merged = [item for item in merged if item.sort_key() < after]
        page = merged[: request.limit]
        next_cursor = None
        if len(merged) > request.limit:
            last = page[-1]
            next_cursor = self._cursors.encode(
                request.fingerprint(), Position(last.article.published_at, last.id)
            )
        return FeedPage(page, overall_cache_status(ordered), next_cursor, ordered)

    def finish_rendered(self, gathering: Gathering, render: Callable[[FeedPage], R]) -> R:
        """`render(finish(gathering))`, remembered while the cached results it used last,
        so a cache hit neither merges nor serialises again."""
        key = gathering.memo_key()
        if key is not None:
            with self._rendered_lock:
                remembered = self._rendered.get(key)
            if remembered is not None:
                return remembered
        rendered = render(self.finish(gathering))
        if key is not None:
            with self._rendered_lock:
                self._rendered[key] = rendered
        return rendered

    def _position(self, request: FeedRequest) -> Position | None:
        if request.cursor is None:
            return None
        try:
            return self._cursors.decode(request.cursor, request.fingerprint())
        except InvalidCursor as exc:
            raise InvalidInput(f"cursor: {exc}") from None

    def _failed(
        self,
        name: str,
        query: Query,
        error: UpstreamError,
        results: dict[str, Sequence[FeedItem]],
    ) -> SourceReport:
        """Serve an expired result for the query if one is kept, else report the error."""
        cached = self._cache.get((name, query))
        if cached is None:
            return SourceReport(name, "error", error=error)
        self._metrics.cache_lookups.labels("stale").inc()
        results[name] = cached.value
        return SourceReport(name, "stale", len(cached.value), error=error, from_cache=True)

    def _fetch(self, provider: Provider, query: Query) -> tuple[FeedItem, ...]:
        """Runs on a worker thread, once per (provider, query) at a time."""
        cached = self._cache.get((provider.name, query))
        if cached is not None and cached.fresh:
            return cached.value  # another flight filled it while this one was queued
        self._health.admit(provider.name)  # an open breaker or a cool-down fails fast
        calls = self._metrics.upstream_calls
        try:
            articles = provider.fetch(query, self._timeout)
        except UpstreamError as exc:
            calls.labels(provider.name, exc.code).inc()
            self._health.failed(provider.name, exc)
            raise
        except Exception:
            calls.labels(provider.name, "upstream_bad_response").inc()
            # A bug of ours must not take the feed down; the traceback goes to the log.
            log.exception("provider %s failed unexpectedly", provider.name)
            error = UpstreamError(
                "upstream_bad_response", f"{provider.name} sent an answer newsagg could not read"
            )
            self._health.failed(provider.name, error)
            raise error from None
        ids = self._store.save_articles(
            (a.url, PROVIDER_PRIORITY.index(a.source), article_fields(a)) for a in articles
        )
        items = tuple(FeedItem.of(i, a) for i, a in zip(ids, articles, strict=True))
        self._cache.put((provider.name, query), items)
        calls.labels(provider.name, "ok").inc()
        self._health.succeeded(provider.name)
        return items

    def _retry_after(self, reports: Sequence[SourceReport]) -> int:
        hints = [r.error.retry_after for r in reports if r.error and r.error.retry_after]
        return max(1, int(min(hints))) if hints else RETRY_AFTER_SECONDS

    def article(self, article_id: int) -> dict[str, Any] | None:
        data = self._store.article(article_id)
        return None if data is None else {"id": article_id, **data}


def new_executor() -> ThreadPoolExecutor:
    # Hung upstreams hold a thread until their own timeout ends; 64 keeps room for the rest.
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="upstream")
