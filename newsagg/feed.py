"""The feed: refresh what needs refreshing from the providers in parallel, then answer
from the archive.

A page is always read from the archive (newsagg.store.archive): every article ever
fetched, filtered, matched and ordered there. Before that, each provider's part of the
query is made fresh unless it already is: the harvester covers it (`covered`), or it was
refreshed on demand within the cache TTL. A refresh is fetched at most once at a time per
(provider, query) (single-flight), spends the upstream budget on behalf of the caller
(newsagg.budget), and saves what it got to the archive. A provider that fails, does not
answer in time or has no budget left degrades only its own part: its entry in `sources`
says why, and the archive answers with what it already holds (stale-if-error).

With Redis (`shared`), the in-process cache is a first level in front of it. A local miss
becomes one flight per process (as without Redis) that looks in Redis first (found fresh:
a hit here too); else it takes the query's fetch lock in Redis and fetches, or, when
another instance holds the lock, polls Redis for that instance's result until the
request's budget runs out. N identical misses over any number of instances so make one
upstream call per provider. While Redis does not answer, the flight fetches as without it.

`Feed.page` is the one call the edge makes. A page that needed no refresh is remembered
under `FeedPage.key` for a moment (PAGE_MEMO_SECONDS, or until this process saves
articles), so a repeat does not search again, and the edge can remember its rendering
under the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any, Literal

from cachetools import LRUCache

from newsagg.budget import SPENT, Budgets, BudgetStanding, Caller
from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.errors import InvalidInput, Unavailable
from newsagg.metrics import Metrics
from newsagg.provider_health import BreakerView, Health, ProviderHealth
from newsagg.query.upstream import upstream_queries
from newsagg.request import FeedRequest
from newsagg.shared import RedisDown, SharedResults
from newsagg.singleflight import SingleFlight
from newsagg.store import Store, without_blocking
from newsagg.store.archive import ArchivedRow
from providers.base import (
    CATEGORIES,
    Article,
    BeforeCall,
    Category,
    Provider,
    ProviderName,
    Query,
    UpstreamError,
)

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
# How long a page that needed no refresh is answered again without searching: what
# other processes (the harvester among them) add becomes visible after at most this long.
PAGE_MEMO_SECONDS = 1.0

ARTICLE_FIELDS = tuple(f.name for f in dataclass_fields(Article))
SourceStatus = Literal["ok", "stale", "error", "skipped", "disabled"]
CacheStatus = Literal["hit", "miss", "stale"]
# Failures that a client retrying soon would meet again: an empty page, not a 503.
LASTING_FAILURES = frozenset({"upstream_rejected_query", SPENT})
# Whether the harvester keeps a provider's part of a query fresh (newsagg.harvest).
Coverage = Callable[[ProviderName, Query], bool]


def never_covered(_name: ProviderName, _query: Query) -> bool:
    return False


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


def archived_json(article_id: int, data: str) -> bytes:
    """An archive row's public JSON (as GET /articles shows it): the id put before the
    fields saved with it, without parsing them."""
    return b'{"id":%d,' % article_id + data[1:].encode()


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

    @classmethod
    def archived(cls, article_id: int, data: str) -> FeedItem:
        """The item of an archive row: its id and the public JSON saved with it."""
        return cls.from_json(archived_json(article_id, data))


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
    budget: BudgetStanding


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a flight hands over: the items, and whether Redis already had them."""

    items: tuple[FeedItem, ...]
    from_cache: bool = False


@dataclass(slots=True)
class _Gathering:
    """One feed request while its providers' refreshes come in."""

    request: FeedRequest
    position: Position | None
    caller: Caller | None
    reports: dict[str, SourceReport] = field(default_factory=dict)
    pending: dict[str, Future[Delivered]] = field(default_factory=dict)
    versions: list[tuple[str, float]] = field(default_factory=list)  # cache entries used

    def key(self, generation: int) -> Hashable | None:
        """What identifies the page while nothing needs refreshing; None when something
        did (such a page is not remembered)."""
        if self.pending:
            return None
        return (self.request, tuple(self.versions), generation)


@dataclass(frozen=True, slots=True)
class _Remembered:
    page: FeedPage
    made_at: float  # monotonic


def overall_cache_status(reports: Sequence[SourceReport]) -> CacheStatus:
    """`stale` when a refresh was needed and could not be made, `miss` when one was made
    for this request, else `hit`."""
    if any(r.error is not None for r in reports):
        return "stale"
    if any(r.status == "ok" and not r.from_cache for r in reports):
        return "miss"
    return "hit"


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
        budgets: Budgets,
        shared: SharedResults | None = None,
        covered: Coverage = never_covered,
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
        self._budgets = budgets
        self._covered = covered
        self._pages: LRUCache[Hashable, _Remembered] = LRUCache(maxsize=REMEMBERED_PAGES)
        self._searching: set[Hashable] = set()  # remembered pages being searched anew
        self._pages_lock = threading.Lock()
        self._generation = 0  # counts this process's saves: a remembered page is then old

    async def page(self, request: FeedRequest, caller: Caller | None = None) -> FeedPage:
        """One page of the feed, refreshed on `caller`'s share of the upstream budgets.
        A page needing no refresh, remembered, never awaits. Raises InvalidInput for a bad
        cursor, Unavailable when no provider could deliver and the archive has nothing."""
        gathering = self._start(request, caller)
        if gathering.pending:
            await _wait(gathering.pending.values(), self._timeout + HANDOVER_GRACE_SECONDS)
        key = gathering.key(self._generation)
        if key is not None:
            remembered = self._remembered(key)
            if remembered is not None:
                return remembered
        reports = self._collect(gathering)
        try:
            rows = await without_blocking(
                self._store, self._store.search, request.archive_query(gathering.position)
            )
        finally:
            with self._pages_lock:
                self._searching.discard(key)
        made_at = time.monotonic()
        page = self._finish(request, reports, rows, None if key is None else (key, made_at))
        if key is not None:
            with self._pages_lock:
                self._pages[key] = _Remembered(page, made_at)
        return page

    async def archived(self, request: FeedRequest) -> FeedPage:
        """One page from the archive alone, fetching nothing: for feed readers, which hold
        no key whose share of the upstream budgets could pay for a refresh."""
        position = self._position(request)
        rows = await without_blocking(
            self._store, self._store.search, request.archive_query(position)
        )
        return self._finish(request, [], rows, None)

    def _remembered(self, key: Hashable) -> FeedPage | None:
        """The page remembered under `key` while it is young. Once it is older, one request
        searches again and the others keep getting it meanwhile (no herd of identical
        searches when it expires under load)."""
        now = time.monotonic()
        with self._pages_lock:
            remembered = self._pages.get(key)
            if remembered is None:
                return None
            if now - remembered.made_at < PAGE_MEMO_SECONDS or key in self._searching:
                return remembered.page
            self._searching.add(key)
            return None

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
                self._budgets.standing(provider.name),
            )
            for provider in self._providers.values()
        ]

    def _start(self, request: FeedRequest, caller: Caller | None) -> _Gathering:
        """Note what needs no refresh and start the refreshes that are due. Never blocks."""
        gathering = _Gathering(request, self._position(request), caller)
        hits = 0
        for name in request.sources:
            provider = self._providers[name]
            if not provider.enabled:
                gathering.reports[name] = SourceReport(name, "disabled")
            elif not provider.serves(request.query):
                gathering.reports[name] = SourceReport(name, "skipped")
            elif self._covered(name, request.query):
                hits += 1
                gathering.reports[name] = SourceReport(name, "ok", from_cache=True)
            else:
                cached = self._cache.get((name, request.query))
                if cached is not None and cached.fresh:
                    hits += 1
                    gathering.versions.append((name, cached.stored_at))
                    gathering.reports[name] = SourceReport(name, "ok", from_cache=True)
                else:
                    self._metrics.cache_misses.inc()
                    gathering.pending[name] = self._single_flight.submit(
                        (name, request.query),
                        lambda p=provider: self._flight(p, request, caller),
                    )
        if hits:
            self._metrics.cache_hits.inc(hits)  # once: an increment costs more than the count
        return gathering

    def _collect(self, gathering: _Gathering) -> list[SourceReport]:
        """Each provider's report, from what its refresh delivered by now. Never blocks."""
        request, reports = gathering.request, gathering.reports
        for name, future in gathering.pending.items():
            if not future.done():
                # The flight goes on and records its own outcome; this request stops waiting.
                timeout = UpstreamError(
                    "upstream_timeout", f"{name} did not answer within {self._timeout:g} seconds"
                )
                reports[name] = self._failed(name, request.query, timeout)
            elif isinstance(future.exception(), UpstreamError):
                reports[name] = self._failed(name, request.query, future.exception())
            else:
                delivered = future.result()  # any other exception is a bug of ours: raise it
                reports[name] = SourceReport(name, "ok", from_cache=delivered.from_cache)
        return [reports[name] for name in request.sources]

    def _finish(
        self,
        request: FeedRequest,
        reports: list[SourceReport],
        rows: list[ArchivedRow],
        key: Hashable | None,
    ) -> FeedPage:
        """Cut the page from the archive's rows and count each provider's articles in it."""
        # Nothing to show and something may come back soon: a 503 worth retrying. When
        # every failure is one retrying cannot help (an upstream refusing the query itself,
        # a budget spent for hours), the page is empty and `sources` says why.
        if (
            not rows
            and not any(r.status in ("ok", "stale") for r in reports)
            and any(r.error and r.error.code not in LASTING_FAILURES for r in reports)
        ):
            raise Unavailable(
                "No provider could deliver: "
                + "; ".join(f"{r.name}: {r.error.code}" for r in reports if r.error)
                + ".",
                retry_after_seconds=self._retry_after(reports),
            )
        items = [FeedItem.archived(row.id, row.data) for row in rows[: request.limit]]
        next_cursor = None
        if len(rows) > request.limit:
            last = rows[request.limit - 1]
            next_cursor = self._cursors.encode(
                request.fingerprint(), Position(last.position, last.id, last.horizon)
            )
        counts = Counter(item.article.source for item in items)
        shown = [
            r if r.status in ("skipped", "disabled") else replace(r, article_count=counts[r.name])
            for r in reports
        ]
        return FeedPage(items, overall_cache_status(shown), next_cursor, shown, key)

    def _position(self, request: FeedRequest) -> Position | None:
        if request.cursor is None:
            return None
        try:
            return self._cursors.decode(request.cursor, request.fingerprint())
        except InvalidCursor as exc:
            raise InvalidInput(f"cursor: {exc}") from None

    def _failed(self, name: ProviderName, query: Query, error: UpstreamError) -> SourceReport:
        """`stale` when an earlier refresh of the query is known (the archive holds what it
        brought), else `error`; the archive answers either way."""
        if self._cache.get((name, query)) is None:
            return SourceReport(name, "error", error=error)
        self._metrics.cache_stale.inc()
        return SourceReport(name, "stale", error=error, from_cache=True)

    def _flight(self, provider: Provider, request: FeedRequest, caller: Caller | None) -> Delivered:
        """Runs on a worker thread, once per (provider, query) and process at a time."""
        if self._shared is not None:
            try:
                return self._shared_flight(self._shared, provider, request, caller)
            except RedisDown:
                pass  # as without Redis
        return Delivered(self._fetch(provider, request, caller))

    def _shared_flight(
        self,
        shared: SharedResults,
        provider: Provider,
        request: FeedRequest,
        caller: Caller | None,
    ) -> Delivered:
        """Redis's result, else this instance's fetch under the query's lock, else the
        result of the instance holding it. Raises RedisDown before fetching anything."""
        query = request.query
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
                # Stale or fresh, a local copy: it marks the query as refreshed here too.
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
                    # The holder before may have left its outcome between the look above
                    # and this lock (it records, then unlocks): look again before fetching.
                    found, failed = shared.look(key)
                    new_failure = failed is not None and failed.at >= waiting_since
                    if not new_failure and (found is None or found[0] == seen):
                        return Delivered(self._fetch_shared(shared, key, provider, request, caller))
                finally:
                    shared.unlock(lock)
                continue  # an outcome came in meanwhile: the top of the loop takes it
            if time.monotonic() >= deadline:  # the request has stopped waiting by now
                raise UpstreamError(
                    "upstream_timeout", f"{provider.name} did not answer in time on any instance"
                )
            first_look = False
            time.sleep(SHARED_POLL_SECONDS)

    def _fetch_shared(
        self,
        shared: SharedResults,
        key: str,
        provider: Provider,
        request: FeedRequest,
        caller: Caller | None,
    ) -> tuple[FeedItem, ...]:
        """`_fetch` under the query's lock in Redis; its failure is left there for the
        instances waiting on it."""
        try:
            return self._fetch(provider, request, caller)
        except UpstreamError as exc:
            with contextlib.suppress(RedisDown):  # then the waiters fetch themselves
                shared.fail(key, exc)
            raise

    def _fetch(
        self, provider: Provider, request: FeedRequest, caller: Caller | None
    ) -> tuple[FeedItem, ...]:
        """Runs on a worker thread, once per (provider, query) at a time: one upstream call
        per text the upstream needs, each paid from the budget first."""
        query = request.query
        cached = self._cache.get((provider.name, query))
        if cached is not None and cached.fresh:
            return cached.value  # another flight filled it while this one was queued
        articles: dict[str, Article] = {}
        for upstream_query in upstream_queries(provider.name, query, request.match):
            for article in self._call(provider, upstream_query, caller):
                articles.setdefault(article.url, article)
        items = self.save(list(articles.values()))
        stored_at = self._cache.put((provider.name, query), items)
        if self._shared is not None:
            # One item's JSON a line (json.dumps escapes newlines): read back without parsing
            # the whole list or serialising each item again.
            payload = b"\n".join(item.json for item in items)
            # Unshared while Redis is down: this instance has it, the others fetch it.
            with contextlib.suppress(RedisDown):
                self._shared.put(_shared_key(provider.name, query), stored_at, payload)
        return items

    def _call(self, provider: Provider, query: Query, caller: Caller | None) -> list[Article]:
        """Upstream calls on demand, if the breaker allows them, each paid from `caller`'s
        share of the budget first."""
        self._health.admit(provider.name)  # an open breaker or a cool-down fails fast
        calls = self._metrics.upstream_calls
        try:
            articles = provider.fetch(query, self._timeout, self._payer(provider.name, caller))
        except UpstreamError as exc:
            calls.labels(provider.name, exc.code).inc()
            if exc.code == SPENT:  # not the upstream's failure: its health stays as it was
                log.info("provider %s not called: %s", provider.name, exc.message)
                raise
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
        calls.labels(provider.name, "ok").inc()
        self._health.succeeded(provider.name)
        return articles

    def _payer(self, name: ProviderName, caller: Caller | None) -> BeforeCall:
        """What pays each call of this refresh from `caller`'s share of the budget, waiting
        for it while the request's time allows."""
        deadline = time.monotonic() + self._timeout
        return lambda: self._budgets.take_within(
            name, "demand", caller, seconds=deadline - time.monotonic()
        )

    def save(self, articles: Sequence[Article]) -> tuple[FeedItem, ...]:
        """Keep `articles` in the archive (a story seen again keeps its id); their items."""
        ids = self._store.save_articles(
            (a.url, PROVIDER_PRIORITY.index(a.source), article_fields(a)) for a in articles
        )
        self._generation += 1
        return tuple(FeedItem.of(i, a) for i, a in zip(ids, articles, strict=True))

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
