"""Event streams of saved searches: one poll of the store per process wakes every stream.

Whichever instance matched an article, its match is in the store; each process polls for
matches newer than the last it saw (one small query every POLL_SECONDS however many
streams are open) and wakes the streams of the searches concerned, which then read their
own matches after their last event id. A stream holds an asyncio.Event and a few numbers,
so open streams cost little memory each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from newsagg.store import Store, without_blocking

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
PAGE = 100  # matches one stream reads at a time
HEARTBEAT_SECONDS = 15.0
RETRY_MS = 5000  # what EventSource waits before reconnecting


class MatchHub:
    def __init__(self, store: Store, poll_seconds: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._waiting: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._seen: int | None = None

    async def stream(
        self, search_id: int, after: int, lasts: float, heartbeat: float = HEARTBEAT_SECONDS
    ) -> AsyncIterator[tuple[int, int, str] | None]:
        """(match id, article id, article JSON without id) of each match of the search
        after match `after`, as they come, for `lasts` seconds; None for a heartbeat when
        nothing came for `heartbeat` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lasts
        woken = asyncio.Event()
        self._waiting[search_id].add(woken)
        self._ensure_polling()
        try:
            while True:
                woken.clear()  # before reading: a match recorded meanwhile wakes it again
                rows = await without_blocking(
                    self._store, self._store.matches_after, search_id, after, PAGE
                )
                for row in rows:
                    after = row[0]
                    yield row
                if len(rows) == PAGE:
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(woken.wait(), min(heartbeat, left))
                except TimeoutError:
                    if loop.time() < deadline:
                        yield None
        finally:
            self._waiting[search_id].discard(woken)
            if not self._waiting[search_id]:
                del self._waiting[search_id]

    def _ensure_polling(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._poll(), name="match-hub")

    async def _poll(self) -> None:
        while self._waiting:
            with contextlib.suppress(Exception):  # a store away: the streams wait meanwhile
                await self._wake_new()
            await asyncio.sleep(self._poll_seconds)

    async def _wake_new(self) -> None:
        store = self._store
        if self._seen is None:
            self._seen = await without_blocking(store, store.newest_match_id)
            # A stream may have read nothing yet: wake them all once.
            woken = [event for events in self._waiting.values() for event in events]
        else:
            rows = await without_blocking(store, store.matched_searches_after, self._seen, 10_000)
            if not rows:
                return
            self._seen = rows[-1][0]
            woken = [event for _, sid in rows for event in self._waiting.get(sid, ())]
        for event in woken:
            event.set()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
