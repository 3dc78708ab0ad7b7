"""Per-key hourly rate limits: an exact sliding window.

The limiter keeps each key's request times of the last hour (at most `limit` of them), so
there is no fixed-window boundary where a client could send twice its limit. State is per
process: with several workers each has its own window. `RateLimiter` is the interface a
shared store (Redis, say) would implement to lift that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

WINDOW_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Standing:
    limit: int | None  # None: no limit
    remaining: int | None
    reset_seconds: int  # until one more request is allowed; 0 when one is now
    allowed: bool = True


class RateLimiter(Protocol):
    def hit(self, key_id: int, limit: int | None) -> Standing:
        """Count one request if the limit allows it; answer the standing after it."""
        ...

    def peek(self, key_id: int, limit: int | None) -> Standing:
        """The standing, counting nothing."""
        ...

    def refund(self, key_id: int, limit: int | None) -> Standing:
        """Take back the request counted last; answer the standing after it."""
        ...


class SlidingWindowLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def _standing(self, window: deque[float], limit: int, now: float, allowed: bool) -> Standing:
        remaining = limit - len(window)
        reset = 0 if remaining > 0 else max(0, int(window[0] + WINDOW_SECONDS - now + 0.999))
        return Standing(limit, remaining, reset, allowed)

    def _window(self, key_id: int, now: float) -> deque[float]:
        window = self._windows.setdefault(key_id, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        return window

    def hit(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return Standing(None, None, 0)
        with self._lock:
            now = self._clock()
            window = self._window(key_id, now)
            if len(window) >= limit:
                return self._standing(window, limit, now, allowed=False)
            window.append(now)
            return self._standing(window, limit, now, allowed=True)

    def peek(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return Standing(None, None, 0)
        with self._lock:
            now = self._clock()
            return self._standing(self._window(key_id, now), limit, now, allowed=True)

    def refund(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return Standing(None, None, 0)
        with self._lock:
            now = self._clock()
            window = self._window(key_id, now)
            if window:
                window.pop()
            return self._standing(window, limit, now, allowed=True)
