"""Event streams of saved searches: one poll of the store per process wakes every stream.

Whichever instance matched an article, its match is in the store; each process polls for
matches newer than the last it saw (one small query every POLL_SECONDS however many
streams are open) and wakes the streams of the searches concerned, which then read their
own matches after their last event id. A stream holds an asyncio.Event and a few numbers,
so open streams cost little memory each, and all of it is given back when they end.

Each key holds a bounded number of streams in a process (`admit`): past it the key is
RateLimited until its first stream ends; the open streams are never cut off for it. A
stream ends when its search is deleted or its key revoked: no match is read for a revoked
key (the store's query says so), and every CHECK_SECONDS one query over the searches with
open streams ends theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator

from newsagg.errors import RateLimited
from newsagg.store import Store, without_blocking
from newsagg.stories.model import StoryRef

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
CHECK_SECONDS = 2.0  # how often the searches with open streams are checked still to serve
CHECKED_AT_ONCE = 500  # search ids per liveness query
PAGE = 100  # matches one stream reads at a time
HEARTBEAT_SECONDS = 15.0
RETRY_MS = 5000  # what EventSource waits before reconnecting


class StreamSlot:
    """One key's place for one stream, given back by `release` (when the stream ends) or,
    failing that, when the slot is garbage (a stream never started)."""

    def __init__(self, hub: MatchHub, key_id: int, number: int) -> None:
        self._hub, self._key_id, self._number = hub, key_id, number
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._hub._give_back(self._key_id, self._number)

    def __del__(self) -> None:
        self.release()


class MatchHub:
    def __init__(
        self, store: Store, poll_seconds: float = POLL_SECONDS, check_seconds: float = CHECK_SECONDS
    ) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._check_seconds = check_seconds
        self._waiting: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._gone: set[int] = set()  # searches deleted, or of a revoked key, with streams
        self._task: asyncio.Task[None] | None = None
        self._seen: int | None = None
        # Each key's open streams: slot number -> when it ends (monotonic clock).
        self._slots: dict[int, dict[int, float]] = {}
        self._numbers = itertools.count()
        self._slots_lock = threading.Lock()  # a slot may be given back by the collector

    # -- places per key --------------------------------------------------------------

    def admit(self, key_id: int, most: int, lasts: float) -> StreamSlot:
        """A place for one more stream of `key_id` lasting at most `lasts` seconds, or
        RateLimited when it holds `most` (Retry-After: when its first stream ends)."""
        now = time.monotonic()
        with self._slots_lock:
            held = self._slots.setdefault(key_id, {})
            if len(held) >= most:
                wait = max(1, math.ceil(min(held.values()) - now))
                raise RateLimited(
                    f"This key holds {len(held)} open event streams, the most its tier allows"
                    " at once; close one, or retry after Retry-After seconds.",
                    retry_after_seconds=wait,
                )
            number = next(self._numbers)
            held[number] = now + lasts
        return StreamSlot(self, key_id, number)

    def _give_back(self, key_id: int, number: int) -> None:
        with self._slots_lock:
            held = self._slots.get(key_id, {})
            held.pop(number, None)
            if not held:
                self._slots.pop(key_id, None)

    def streams_of(self, key_id: int) -> int:
        """How many streams `key_id` holds open in this process."""
        with self._slots_lock:
            return len(self._slots.get(key_id, ()))

    def idle(self) -> bool:
        """Whether nothing of any stream is left (places, waiters, ended searches)."""
        with self._slots_lock:
            slots = bool(self._slots)
        return not (slots or self._waiting or self._gone)

    # -- streams ---------------------------------------------------------------------

    async def stream(
        self,
        search_id: int,
        after: int,
        lasts: float,
        heartbeat: float = HEARTBEAT_SECONDS,
        slot: StreamSlot | None = None,
    ) -> AsyncIterator[tuple[int, int, str, StoryRef | None] | None]:
        """(match id, article id, article JSON without id) of each match of the search
        after match `after`, as they come, for `lasts` seconds or until the search stops
        serving; None for a heartbeat when nothing came for `heartbeat` seconds. `slot`
        is given back when it ends."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lasts
        woken = asyncio.Event()
        self._waiting[search_id].add(woken)
        self._ensure_polling()
        try:
            while search_id not in self._gone:
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
                    if loop.time() < deadline and search_id not in self._gone:
                        yield None
        finally:
            self._waiting[search_id].discard(woken)
            if not self._waiting[search_id]:
                del self._waiting[search_id]
                self._gone.discard(search_id)
            if slot is not None:
                slot.release()

    def _ensure_polling(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._poll(), name="match-hub")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while self._waiting:
            with contextlib.suppress(Exception):  # a store away: the streams wait meanwhile
                await self._wake_new()
            if loop.time() - checked >= self._check_seconds:
                checked = loop.time()
                with contextlib.suppress(Exception):
                    await self._end_gone()
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

    async def _end_gone(self) -> None:
        """End the streams of searches deleted or whose key was revoked (on any instance:
        the store says which still serve)."""
        ids = [sid for sid in self._waiting if sid not in self._gone]
        for start in range(0, len(ids), CHECKED_AT_ONCE):
            part = ids[start : start + CHECKED_AT_ONCE]
            found = await without_blocking(self._store, self._store.searches_live, part)
            live = {search.id for search in found}
            for search_id in set(part) - live:
                self._gone.add(search_id)
                for event in self._waiting.get(search_id, ()):
                    event.set()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
