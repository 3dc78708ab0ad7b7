"""Per-key hourly rate limits: an exact sliding window.

A key's window is the log of its requests counted in the last hour (at most `limit` of
them), so there is no fixed-window boundary where a client could send twice its limit.
Where the windows live decides who shares them (`choose` picks, from the settings):

- `SlidingWindowLimiter`: in the process. The fastest; each worker process has its own.
- `DatabaseLimiter` (ratelimit.database): in the store, SQLite or PostgreSQL, shared by
  every process using it: several workers on one machine, or instances on one PostgreSQL.
- `RedisLimiter` (ratelimit.redis_windows): in Redis, shared by every instance, with a
  per-process fallback while Redis cannot be reached.

All three implement `RateLimiter` with the same semantics (the same tests run on each).
A request's hit returns the entry it counted, and a refund takes back exactly that entry,
not whichever request another process counted last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsagg.ratelimit.base import (
    UNLIMITED,
    WINDOW_SECONDS,
    RateLimiter,
    SlidingWindowLimiter,
    Standing,
    standing,
)
from newsagg.settings import Settings, SettingsError
from newsagg.store import Store

if TYPE_CHECKING:
    from newsagg.shared import RedisLink

__all__ = [
    "UNLIMITED",
    "WINDOW_SECONDS",
    "RateLimiter",
    "SlidingWindowLimiter",
    "Standing",
    "choose",
    "standing",
]


def choose(settings: Settings, store: Store, redis: RedisLink | None = None) -> RateLimiter:
    """Where this service keeps its windows (`Settings.windows_live_in`)."""
    mode = settings.windows_live_in()
    if mode == "redis":
        from newsagg.ratelimit.redis_windows import RedisLimiter

        if redis is None:
            raise SettingsError("NEWSAGG_RATE_LIMIT_WINDOWS=redis needs NEWSAGG_REDIS_URL")
        return RedisLimiter(redis)
    if mode == "database":
        from newsagg.ratelimit.database import DatabaseLimiter

        return DatabaseLimiter(store)
    return SlidingWindowLimiter()
