"""What every rate limiter shares (the window, a standing, the `RateLimiter` protocol) and
the in-process limiter, which the Redis one falls back to. In a module of its own so that
the limiters `choose` loads import it, not the package that loads them."""

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
    entry: str | None = None  # what `hit` counted, for `refund`; None when nothing was


UNLIMITED = Standing(None, None, 0)


def standing(
    limit: int, count: int, oldest: float | None, now: float, allowed: bool, entry: str | None
) -> Standing:
    """The standing of a window holding `count` requests, the oldest counted at `oldest`."""
    remaining = limit - count
    reset = 0
    if remaining <= 0 and oldest is not None:
        reset = max(0, int(oldest + WINDOW_SECONDS - now + 0.999))
    return Standing(limit, remaining, reset, allowed, entry)


class RateLimiter(Protocol):
    async def hit(self, key_id: int, limit: int | None) -> Standing:
        """Count one request if the limit allows it; answer the standing after it."""
        ...

    async def peek(self, key_id: int, limit: int | None) -> Standing:
        """The standing, counting nothing."""
        ...

    async def refund(self, key_id: int, limit: int | None, entry: str) -> Standing:
        """Take back the request `hit` counted as `entry`; answer the standing after it."""
        ...


class SlidingWindowLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, key_id: int, now: float) -> deque[float]:
        window = self._windows.setdefault(key_id, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        return window

    def _standing(
        self, window: deque[float], limit: int, now: float, allowed: bool, entry: str | None
    ) -> Standing:
        return standing(limit, len(window), window[0] if window else None, now, allowed, entry)

    async def hit(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        with self._lock:
            now = self._clock()
            window = self._window(key_id, now)
            if len(window) >= limit:
                return self._standing(window, limit, now, False, None)
            window.append(now)
            # The entry is the time itself: requests counted at the same instant are
            # interchangeable, so refunding either is the same.
            return self._standing(window, limit, now, True, repr(now))

    async def peek(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        with self._lock:
            now = self._clock()
            return self._standing(self._window(key_id, now), limit, now, True, None)

    async def refund(self, key_id: int, limit: int | None, entry: str) -> Standing:
        if limit is None:
            return UNLIMITED
        with self._lock:
            now = self._clock()
            window = self._window(key_id, now)
            if float(entry) in window:  # it may have left the window since
                window.remove(float(entry))
            return self._standing(window, limit, now, True, None)
