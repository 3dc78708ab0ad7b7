"""Rate-limit windows in the store: shared by every process using the same database.

SQLite: a row per counted request in the database file, each hit one `BEGIN IMMEDIATE`
transaction, so the workers of one machine count into one window. PostgreSQL: the same
table, a lock per key for the count-then-insert, the server's clock, so instances
sharing the database share the windows even without Redis. A key's expired rows go at its
next hit, so the table holds at most `limit` rows per key. Store errors propagate: with
PostgreSQL down the request has already failed its key check with a 503.
"""

from __future__ import annotations

from newsagg.ratelimit.base import UNLIMITED, WINDOW_SECONDS, Standing, standing
from newsagg.store import Store, without_blocking
from newsagg.store.base import Window


def _standing(limit: int, window: Window, allowed: bool) -> Standing:
    return standing(limit, window.count, window.oldest, window.now, allowed, window.entry)


class DatabaseLimiter:
    def __init__(self, store: Store) -> None:
        self._store = store

    # Each call is one short transaction: inline on a local file, on a worker thread when
    # the database is a server (see without_blocking).
    async def hit(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        store = self._store
        window = await without_blocking(store, store.window_hit, key_id, limit, WINDOW_SECONDS)
        return _standing(limit, window, allowed=window.entry is not None)

    async def peek(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        store = self._store
        window = await without_blocking(store, store.window_peek, key_id, WINDOW_SECONDS)
        return _standing(limit, window, True)

    async def refund(self, key_id: int, limit: int | None, entry: str) -> Standing:
        if limit is None:
            return UNLIMITED
        store = self._store
        window = await without_blocking(store, store.window_refund, key_id, entry, WINDOW_SECONDS)
        return _standing(limit, window, True)
