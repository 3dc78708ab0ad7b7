"""Per-provider result cache: fresh for `ttl`, then kept as stale for `max_stale` more.

Keeping expired entries (instead of letting them vanish at `ttl`) is what lets the feed
serve a stale result when the provider fails (stale-if-error). The cache is bounded in
entries, so memory plateaus however many distinct queries arrive.

A lookup sits on the path of every cache hit, so it is one dict read and one clock read:
no lock (a dict read is atomic in CPython), no per-read bookkeeping. Writes take a lock
and make room by dropping the oldest entries; an entry past its stale window is dropped
when it is next read.

With Redis configured this is the first level in front of it, on a wall-clock `clock`:
an entry copied from Redis keeps the time it was fetched, so it is fresh for `ttl` from
that moment on every instance, whichever instance fetched it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    value: T
    fresh: bool
    stored_at: float  # identifies this version of the entry


class ResultCache(Generic[T]):
    def __init__(
        self,
        ttl: float,
        max_stale: float,
        maxsize: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_age = ttl + max_stale
        self.maxsize = maxsize
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, T]] = {}  # in order of writing
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Cached[T] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        age = self._clock() - stored_at
        if age >= self.max_age:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
            return None
        return Cached(value, fresh=age < self.ttl, stored_at=stored_at)

    def put(self, key: Hashable, value: T, stored_at: float | None = None) -> float:
        """Keep `value` as fetched at `stored_at` (now when not given; a copy of a result
        fetched elsewhere keeps its own time, so it expires when the original does)."""
        if stored_at is None:
            stored_at = self._clock()
        with self._lock:
            self._entries.pop(key, None)  # a rewrite counts as the newest entry
            while len(self._entries) >= self.maxsize:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (stored_at, value)
        return stored_at

    def __len__(self) -> int:
        return len(self._entries)
