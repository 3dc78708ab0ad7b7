"""The feed: fan out to providers in parallel, merge, dedupe, sort newest first, paginate.

Each provider's result for a query is fetched at most once at a time (single-flight), then
gets stable ids from the store and is cached. A provider that fails or does not answer in
time degrades only its own part of the answer: its entry in `sources` says why, and an
expired cached result is served instead when there is one (stale-if-error).

With Redis (`shared`), the in-process cache is a first level in front of it. A local miss
becomes one flight per process (as without Redis) that looks in Redis first (found fresh:
a hit here too); else it takes the query's fetch lock in Redis and fetches, or, when
another instance holds the lock, polls Redis for that instance's result until the
request's budget runs out. N identical misses over any number of instances so make one
upstream call per provider. While Redis does not answer, the flight fetches as without it.

`Feed.page` is the one call the edge makes. A page made only of cached results is
remembered under `FeedPage.key`, so a repeat neither merges nor sorts again, and the edge
can remember its rendering under the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any, Literal

from cachetools import LRUCache

from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.errors import InvalidInput, Unavailable
from newsagg.metrics import Metrics
from newsagg.provider_health import BreakerView, Health, ProviderHealth
from newsagg.shared import RedisDown, SharedResults
from newsagg.singleflight import SingleFlight
from newsagg.store import Store
from providers.base import (
    CATEGORIES,
    PROVIDER_NAMES,
    Article,
    Category,
    Provider,
    ProviderName,
    Query,
    UpstreamError,
)
from providers.text import parse_timestamp

log = logging.getLogger(__name__)

# When two providers carry the same story, keep the record of the one nearest the source:
# the Guardian publishes its own stories, NewsAPI relays, Hacker News only links.
PROVIDER_PRIORITY: tuple[ProviderName, ...] = ("guardian", "newsapi", "hackernews")
# Time allowed past the upstream budget for the worker thread to hand its result over.
HANDOVER_GRACE_SECONDS = 0.25
RETRY_AFTER_SECONDS = 30
# How often a flight waiting for another instance's fetch looks in Redis for its result.
SHARED_POLL_SECONDS = 0.02
REMEMBERED_PAGES = 1024

ARTICLE_FIELDS = tuple(f.name for f in dataclass_fields(Article))
SourceStatus = Literal["ok", "stale", "error", "skipped", "disabled"]
CacheStatus = Literal["hit", "miss", "stale"]


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

    @classmethod
    def from_json(cls, data: bytes) -> FeedItem:
        """The item whose public JSON is `data` (as read back from Redis), kept as it is."""
        fields = json.loads(data)
        values = {name: fields[name] for name in ARTICLE_FIELDS}
        values["published_at"] = datetime.fromisoformat(fields["published_at"])
        return cls(fields["id"], Article(**values), data)

    def sort_key(self) -> tuple[datetime, int]:
        return (self.article.published_at, self.id)


def _instant(name: str, value: str | None) -> datetime | None:
    """A client's RFC 3339 date-time, which must carry its offset, as UTC."""
    if value is None:
        return None
    try:
        return parse_timestamp(value, require_offset=True)
    except ValueError:
        raise InvalidInput(
            f"{name}: {value!r} is not an RFC 3339 date-time such as 2026-11-25T08:00:00Z"
        ) from None


@dataclass(frozen=True, slots=True)
class FeedRequest:
    query: Query
    sources: tuple[ProviderName, ...]  # the providers asked for, in PROVIDER_NAMES order
    limit: int
    cursor: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        category: Category | None = None,
        q: str | None = None,
        sources: Iterable[str] | None = None,
        published_from: str | None = None,
        published_to: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> FeedRequest:
        """A request from a client's values (already checked against the contract)."""
        start, end = _instant("from", published_from), _instant("to", published_to)
        if start and end and start > end:
            raise InvalidInput("from: must not be later than to")
        wanted = set(sources or PROVIDER_NAMES)
        return cls(
            Query(category, q, start, end),
            tuple(name for name in PROVIDER_NAMES if name in wanted),
            limit,
            cursor,
        )

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
    name: ProviderName
    status: SourceStatus
    article_count: int | None = None
    error: UpstreamError | None = None
    from_cache: bool = False


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[FeedItem]
    cache_status: CacheStatus
    next_cursor: str | None
    sources: list[SourceReport]
    # Identifies the page while the cached results it was made of last; None when any part
    # was fetched now or failed (such a page is not remembered).
    key: Hashable | None = None


@dataclass(frozen=True, slots=True)
class SourceView:
    """A provider as /sources shows it."""

    name: ProviderName
    enabled: bool
    categories: tuple[Category, ...]
    health: Health
    breaker: BreakerView


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a flight hands over: the items, and whether Redis already had them."""

    items: tuple[FeedItem, ...]
    from_cache: bool = False


@dataclass(slots=True)
class _Gathering:
    """One feed request while its providers' results come in."""

    request: FeedRequest
    position: Position | None
    reports: dict[str, SourceReport] = field(default_factory=dict)
    results: dict[str, Sequence[FeedItem]] = field(default_factory=dict)
    pending: dict[str, Future[Delivered]] = field(default_factory=dict)
    versions: list[tuple[str, float]] = field(default_factory=list)  # cache entries used

    def key(self) -> Hashable | None:
        return None if self.pending else (self.request, tuple(self.versions))


def merge(results: dict[str, Sequence[FeedItem]]) -> list[FeedItem]:
    """One list without duplicate URLs, newest first (ties: higher id first)."""
    by_url: dict[str, FeedItem] = {}
    for name in PROVIDER_PRIORITY:
        for item in results.get(name, ()):
            by_url.setdefault(item.article.url, item)
    return sorted(by_url.values(), key=FeedItem.sort_key, reverse=True)


def overall_cache_status(reports: Sequence[SourceReport]) -> CacheStatus:
    contributing = [r for r in reports if r.status in ("ok", "stale")]
    if any(r.status == "stale" for r in contributing):
        return "stale"
    if contributing and all(r.from_cache for r in contributing):
        return "hit"
    return "miss"


def _consume_outcome(waiter: asyncio.Future[Any]) -> None:
    """The outcome is read from the concurrent future; mark the asyncio copy as read too,
    or asyncio logs "Future exception was never retrieved" for every failed fetch."""
    if not waiter.cancelled():
        waiter.exception()


async def _wait(futures: Iterable[Future[Any]], timeout: float) -> None:
    """Wait on the event loop (no thread held) until all are done or `timeout` passes."""
    waiters = [asyncio.wrap_future(f) for f in futures]
    for waiter in waiters:
        waiter.add_done_callback(_consume_outcome)
    await asyncio.wait(waiters, timeout=timeout)


class Feed:
    def __init__(
        self,
        providers: Sequence[Provider],
        store: Store,
        cache: ResultCache[tuple[FeedItem, ...]],
        health: ProviderHealth,
        cursors: CursorCodec,
        timeout: float,
        single_flight: SingleFlight,
        metrics: Metrics,
        shared: SharedResults | None = None,
    ) -> None:
        self._providers = {p.name: p for p in providers}
        self._store = store
        self._cache = cache
        self._health = health
        self._cursors = cursors
        self._timeout = timeout
        self._single_flight = single_flight
        self._metrics = metrics
        self._shared = shared
        self._pages: LRUCache[Hashable, FeedPage] = LRUCache(maxsize=REMEMBERED_PAGES)
        self._pages_lock = threading.Lock()

    async def page(self, request: FeedRequest) -> FeedPage:
        """One page of the feed. A cache hit never awaits: it stays on the caller's turn of
        the event loop. Raises InvalidInput for a bad cursor, Unavailable when no provider
        could deliver and nothing is cached."""
        gathering = self._start(request)
        if gathering.pending:
            await _wait(gathering.pending.values(), self._timeout + HANDOVER_GRACE_SECONDS)
        key = gathering.key()
        if key is not None:
            with self._pages_lock:
                remembered = self._pages.get(key)
            if remembered is not None:
                return remembered
        page = self._finish(gathering, key)
        if key is not None:
            with self._pages_lock:
                self._pages[key] = page
        return page

    def article(self, article_id: int) -> dict[str, Any] | None:
        data = self._store.article(article_id)
        return None if data is None else {"id": article_id, **data}

    def sources(self) -> list[SourceView]:
        return [
            SourceView(
                provider.name,
                provider.enabled,
                tuple(c for c in CATEGORIES if c in provider.categories),
                self._health.get(provider.name),
                self._health.breaker(provider.name),
            )
            for provider in self._providers.values()
        ]

    def _start(self, request: FeedRequest) -> _Gathering:
        """Answer what the cache can and start the fetches it cannot. Never blocks."""
        gathering = _Gathering(request, self._position(request))
        hits = 0
        for name in request.sources:
            provider = self._providers[name]
            if not provider.enabled:
                gathering.reports[name] = SourceReport(name, "disabled")
            elif not provider.serves(request.query):
                gathering.reports[name] = SourceReport(name, "skipped")
            else:
                cached = self._cache.get((name, request.query))
                if cached is not None and cached.fresh:
                    hits += 1
                    gathering.versions.append((name, cached.stored_at))
                    gathering.results[name] = cached.value
                    gathering.reports[name] = SourceReport(
                        name, "ok", len(cached.value), from_cache=True
                    )
                else:
                    self._metrics.cache_misses.inc()
                    gathering.pending[name] = self._single_flight.submit(
                        (name, request.query), lambda p=provider: self._flight(p, request.query)
                    )
        if hits:
            self._metrics.cache_hits.inc(hits)  # once: an increment costs more than the count
        return gathering

    def _finish(self, gathering: _Gathering, key: Hashable | None) -> FeedPage:
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
                delivered = future.result()  # any other exception is a bug of ours: raise it
                results[name] = delivered.items
                reports[name] = SourceReport(
                    name, "ok", len(delivered.items), from_cache=delivered.from_cache
                )
        ordered = [reports[name] for name in request.sources]
        # Nothing delivered and something may come back: a 503 worth retrying. When every
        # failure is an upstream refusing the query itself, retrying cannot help: the page
        # is empty and `sources` says why.
        if not results and any(
            r.error and r.error.code != "upstream_rejected_query"
            for r in ordered
            if r.status == "error"
        ):
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
        return FeedPage(page, overall_cache_status(ordered), next_cursor, ordered, key)

    def _position(self, request: FeedRequest) -> Position | None:
        if request.cursor is None:
            return None
        try:
            return self._cursors.decode(request.cursor, request.fingerprint())
        except InvalidCursor as exc:
            raise InvalidInput(f"cursor: {exc}") from None

    def _failed(
        self,
        name: ProviderName,
        query: Query,
        error: UpstreamError,
        results: dict[str, Sequence[FeedItem]],
    ) -> SourceReport:
        """Serve an expired result for the query if one is kept, else report the error."""
        cached = self._cache.get((name, query))
        if cached is None:
            return SourceReport(name, "error", error=error)
        self._metrics.cache_stale.inc()
        results[name] = cached.value
        return SourceReport(name, "stale", len(cached.value), error=error, from_cache=True)

    def _flight(self, provider: Provider, query: Query) -> Delivered:
        """Runs on a worker thread, once per (provider, query) and process at a time."""
        if self._shared is not None:
            try:
                return self._shared_flight(self._shared, provider, query)
            except RedisDown:
                pass  # as without Redis
        return Delivered(self._fetch(provider, query))

    def _shared_flight(self, shared: SharedResults, provider: Provider, query: Query) -> Delivered:
        """Redis's result, else this instance's fetch under the query's lock, else the
        result of the instance holding it. Raises RedisDown before fetching anything."""
        key = _shared_key(provider.name, query)
        deadline = time.monotonic() + self._timeout + HANDOVER_GRACE_SECONDS
        waiting_since = time.time()  # wall clock, as the failures other instances keep
        first_look, seen = True, None
        while True:
            found, failed = shared.look(key)
            if found is not None and found[0] != seen:  # a version not copied yet
                stored_at, payload = found
                seen = stored_at
                items = tuple(FeedItem.from_json(data) for data in payload.split(b"\n") if data)
                # Stale or fresh, a local copy: a stale one still serves if the fetch fails.
                self._cache.put((provider.name, query), items, stored_at)
                copy = self._cache.get((provider.name, query))
                if copy is not None and copy.fresh:
                    # At first look a hit; once waited for, it was fetched now by another
                    # instance: a miss, as for a request that joins an in-process flight.
                    return Delivered(items, from_cache=first_look)
            if failed is not None and failed.at >= waiting_since:
                raise failed.error  # the fetch this one waited for failed, on another instance
            lock = shared.lock(key, self._timeout + HANDOVER_GRACE_SECONDS)
            if lock is not None:
                try:
                    return Delivered(self._fetch(provider, query))
                except UpstreamError as exc:
                    with contextlib.suppress(RedisDown):  # then the waiters fetch themselves
                        shared.fail(key, exc)
                    raise
                finally:
                    shared.unlock(lock)
            if time.monotonic() >= deadline:  # the request has stopped waiting by now
                raise UpstreamError(
                    "upstream_timeout", f"{provider.name} did not answer in time on any instance"
                )
            first_look = False
            time.sleep(SHARED_POLL_SECONDS)

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
            # Expected: one line, no traceback. The message never holds a key or a URL.
            log.warning("provider %s failed: %s (%s)", provider.name, exc.code, exc.message)
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
        stored_at = self._cache.put((provider.name, query), items)
        if self._shared is not None:
            # One item's JSON a line (json.dumps escapes newlines): read back without parsing
            # the whole list or serialising each item again.
            payload = b"\n".join(item.json for item in items)
            # Unshared while Redis is down: this instance has it, the others fetch it.
            with contextlib.suppress(RedisDown):
                self._shared.put(_shared_key(provider.name, query), stored_at, payload)
        calls.labels(provider.name, "ok").inc()
        self._health.succeeded(provider.name)
        return items

    def _retry_after(self, reports: Sequence[SourceReport]) -> int:
        hints = [r.error.retry_after for r in reports if r.error and r.error.retry_after]
        return max(1, int(min(hints))) if hints else RETRY_AFTER_SECONDS


def _shared_key(name: ProviderName, query: Query) -> str:
    """A (provider, query) as every instance names it in Redis."""
    parts = [
        query.category,
        query.q,
        query.published_from and query.published_from.isoformat(),
        query.published_to and query.published_to.isoformat(),
    ]
    return name + ":" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def new_executor() -> ThreadPoolExecutor:
    # Hung upstreams hold a thread until their own timeout ends; 64 keeps room for the rest.
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="upstream")
