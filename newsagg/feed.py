"""The feed: refresh what needs refreshing from the providers in parallel, then answer
from the archive.

A page is always read from the archive (newsagg.store.archive): every article ever
fetched, filtered, matched and ordered there. Before that, each provider's part of the
query is made fresh unless it already is: the harvester covers it (`covered`), or it was
refreshed on demand within the cache TTL. A refresh is fetched at most once at a time per
(provider, query), over all instances with Redis (newsagg.shared_flight), spends the
upstream budget on behalf of the caller and saves what it got to the archive
(newsagg.fetcher). A provider that fails, does not answer in time or has no budget left
degrades only its own part: its entry in `sources` says why, and the archive answers with
what it already holds (stale-if-error). Only when the archive has nothing either, and a
retry may bring something, is the answer Unavailable (a 503).

The edge calls `Feed.page` (GET /articles, a saved search's articles), `Feed.archived`
(feed readers: the archive alone, nothing fetched) and `Feed.article` (one article). A
page that needed no refresh is remembered for a moment (newsagg.page_memo).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from newsagg.archive_writer import ArchiveWriter
from newsagg.articles import FeedItem
from newsagg.budget import SPENT, Caller
from newsagg.cache import ResultCache
from newsagg.cursor import CursorCodec, InvalidCursor, Position
from newsagg.errors import InvalidInput, Unavailable
from newsagg.feed_page import FeedPage, SourceReport
from newsagg.metrics import Metrics
from newsagg.page_memo import PageMemo
from newsagg.request import FeedRequest
from newsagg.shared_flight import HANDOVER_GRACE_SECONDS, Delivered, SharedFlight
from newsagg.store import Store, without_blocking
from newsagg.store.archive import ArchiveQuery
from newsagg.stories.grouping import group_by_story
from providers.base import Provider, ProviderName, Query, UpstreamError

RETRY_AFTER_SECONDS = 30
# Failures that a client retrying soon would meet again: an empty page, not a 503.
LASTING_FAILURES = frozenset({"upstream_rejected_query", SPENT})
# Whether the harvester keeps a provider's part of a query fresh (newsagg.harvest).
Coverage = Callable[[ProviderName, Query], bool]


def never_covered(_name: ProviderName, _query: Query) -> bool:
    return False


@dataclass(slots=True)
class _Gathering:
    """One feed request while its providers' refreshes come in."""

    request: FeedRequest
    search: ArchiveQuery  # what the page is then read from the archive with
    reports: dict[str, SourceReport] = field(default_factory=dict)
    pending: dict[str, Future[Delivered]] = field(default_factory=dict)
    versions: list[tuple[str, float]] = field(default_factory=list)  # cache entries used


class Feed:
    def __init__(
        self,
        providers: Sequence[Provider],
        store: Store,
        cache: ResultCache[tuple[FeedItem, ...]],
        cursors: CursorCodec,
        metrics: Metrics,
        flights: SharedFlight,
        archive: ArchiveWriter,
        covered: Coverage = never_covered,
    ) -> None:
        self.providers = {p.name: p for p in providers}  # by name; GET /sources lists them
        # What refreshes save through: whoever else saves (the harvester) uses it too, so
        # that no page remembered before a save of this process is answered after it.
        self.archive = archive
        self._store = store
        self._cache = cache
        self._cursors = cursors
        self._metrics = metrics
        self._flights = flights
        self._memo = PageMemo(archive)
        self._covered = covered

    async def page(self, request: FeedRequest, caller: Caller | None = None) -> FeedPage:
        """One page of the feed, refreshed on `caller`'s share of the upstream budgets.
        A page needing no refresh, remembered, never awaits. Raises InvalidInput for a bad
        cursor, Unavailable when no provider could deliver and the archive has nothing."""
        gathering = self._start(request, caller)
        if gathering.pending:
            await _wait(gathering.pending.values(), self._flights.timeout + HANDOVER_GRACE_SECONDS)
        reports = self._collect(gathering)
        refusal = _refusal(reports)  # raised if the archive has nothing either
        key = None if gathering.pending else self._memo.key(request, gathering.versions)
        remembered = self._memo.recall(key)
        if remembered is not None:
            return remembered
        try:
            if request.group == "story":
                grouped = await without_blocking(
                    self._store, group_by_story, self._store, gathering.search, request.limit
                )
                rows, shown = grouped.rows, grouped.items
            else:
                rows = await without_blocking(self._store, self._store.search, gathering.search)
                shown = None
            if not rows and refusal is not None:
                raise refusal
            page = FeedPage.cut(request, reports, rows, self._cursors, shown)
        finally:
            self._memo.searched(key)
        return self._memo.remember(key, page)

    async def archived(self, request: FeedRequest) -> FeedPage:
        """One page from the archive alone, fetching nothing: for feed readers, which hold
        no key whose share of the upstream budgets could pay for a refresh."""
        search = request.archive_query(self._position(request))
        rows = await without_blocking(self._store, self._store.search, search)
        return FeedPage.cut(request, [], rows, self._cursors)

    def article(self, article_id: int) -> dict[str, Any] | None:
        """One article's public JSON, as the archive holds it; None when there is none."""
        data = self._store.article(article_id)
        return None if data is None else {"id": article_id, **data}

    def _start(self, request: FeedRequest, caller: Caller | None) -> _Gathering:
        """Note what needs no refresh and start the refreshes that are due. Never blocks."""
        position = self._position(request)
        gathering = _Gathering(request, request.archive_query(position))
        hits = 0
        for name in request.sources:
            provider = self.providers[name]
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
                    gathering.pending[name] = self._flights.refresh(provider, request, caller)
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
                    "upstream_timeout",
                    f"{name} did not answer within {self._flights.timeout:g} seconds",
                )
                reports[name] = self._failed(name, request.query, timeout)
            elif isinstance(future.exception(), UpstreamError):
                reports[name] = self._failed(name, request.query, future.exception())
            else:
                delivered = future.result()  # any other exception is a bug of ours: raise it
                reports[name] = SourceReport(name, "ok", from_cache=delivered.from_cache)
        return [reports[name] for name in request.sources]

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


def _refusal(reports: Sequence[SourceReport]) -> Unavailable | None:
    """What to answer if the archive has nothing to show: a 503 worth retrying when no
    provider delivered and something may come back soon. None when every failure is one
    retrying cannot help (an upstream refusing the query itself, a budget spent for hours):
    the page is then empty, and `sources` says why."""
    if any(r.status in ("ok", "stale") for r in reports) or not any(
        r.error and r.error.code not in LASTING_FAILURES for r in reports
    ):
        return None
    hints = [r.error.retry_after for r in reports if r.error and r.error.retry_after]
    return Unavailable(
        "No provider could deliver: "
        + "; ".join(f"{r.name}: {r.error.code}" for r in reports if r.error)
        + ".",
        retry_after_seconds=max(1, int(min(hints))) if hints else RETRY_AFTER_SECONDS,
    )
