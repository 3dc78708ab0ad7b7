"""Refreshes in flight: each (provider, query) fetched at most once at a time in this
process (newsagg.singleflight), and with Redis (newsagg.shared) once over all instances;
what a fetch brings fills both levels of the result cache.

With Redis, the in-process cache is a first level in front of it. A local miss becomes one
flight per process (as without Redis) that looks in Redis first (found fresh: a hit here
too); else it takes the query's fetch lock in Redis and fetches, or, when another instance
holds the lock, polls Redis for that instance's result until the request's budget runs
out. N identical misses over any number of instances so make one upstream call per
provider. While Redis does not answer, the flight fetches as without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from concurrent.futures import Future
from dataclasses import dataclass

from newsagg.articles import FeedItem
from newsagg.budget import Caller
from newsagg.cache import ResultCache
from newsagg.fetcher import Fetcher
from newsagg.request import FeedRequest
from newsagg.shared import RedisDown, SharedResults
from newsagg.singleflight import SingleFlight
from providers.base import Provider, ProviderName, Query, UpstreamError

# Time allowed past the upstream budget for the worker thread to hand its result over.
HANDOVER_GRACE_SECONDS = 0.25
# How often a flight waiting for another instance's fetch looks in Redis for its result.
SHARED_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Delivered:
    """What a flight hands over: the items, and whether Redis already had them."""

    items: tuple[FeedItem, ...]
    from_cache: bool = False


class SharedFlight:
    def __init__(
        self,
        fetcher: Fetcher,
        cache: ResultCache[tuple[FeedItem, ...]],
        single_flight: SingleFlight,
        shared: SharedResults | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._cache = cache
        self._single_flight = single_flight
        self._shared = shared
        self.timeout = fetcher.timeout  # how long a flight's upstream calls may take

    def refresh(
        self, provider: Provider, request: FeedRequest, caller: Caller | None
    ) -> Future[Delivered]:
        """The refresh of `provider`'s part of `request`: the one in flight for its
        query, or a new one, paid from `caller`'s share of the budget."""
        return self._single_flight.submit(
            (provider.name, request.query), lambda: self._flight(provider, request, caller)
        )

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
        deadline = time.monotonic() + self.timeout + HANDOVER_GRACE_SECONDS
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
            lock = shared.lock(key, self.timeout + HANDOVER_GRACE_SECONDS)
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
        """The fetch, unless another flight filled the cache while this one was queued;
        what it brings kept in the cache, and in Redis (with Redis)."""
        query = request.query
        cached = self._cache.get((provider.name, query))
        if cached is not None and cached.fresh:
            return cached.value
        items = self._fetcher.fetch(provider, request, caller)
        stored_at = self._cache.put((provider.name, query), items)
        if self._shared is not None:
            # One item's JSON a line (json.dumps escapes newlines): read back without parsing
            # the whole list or serialising each item again.
            payload = b"\n".join(item.json for item in items)
            # Unshared while Redis is down: this instance has it, the others fetch it.
            with contextlib.suppress(RedisDown):
                self._shared.put(_shared_key(provider.name, query), stored_at, payload)
        return items


def _shared_key(name: ProviderName, query: Query) -> str:
    """A (provider, query) as every instance names it in Redis."""
    parts = [
        query.category,
        query.q,
        query.published_from and query.published_from.isoformat(),
        query.published_to and query.published_to.isoformat(),
    ]
    return name + ":" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
