"""Per-provider result cache: fresh for `ttl`, then kept as stale for `max_stale` more.

Keeping expired entries (instead of letting them vanish at `ttl`) is what lets the
aggregator serve a stale result when the provider fails (stale-if-error). The cache is
bounded in entries, so memory plateaus however many distinct queries arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TTLCache

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
        self._clock = clock
        self._entries: TTLCache[Hashable, tuple[float, T]] = TTLCache(
            maxsize=maxsize, ttl=ttl + max_stale, timer=clock
        )
        self._lock = threading.Lock()  # cachetools caches are not thread-safe

    def get(self, key: Hashable) -> Cached[T] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        return Cached(value, fresh=self._clock() - stored_at < self.ttl, stored_at=stored_at)

    def put(self, key: Hashable, value: T) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
