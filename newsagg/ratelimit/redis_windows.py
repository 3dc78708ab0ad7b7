"""Rate-limit windows in Redis: one window per key across every instance.

Why a script of our own and not the `limits` library's moving window: its Redis moving
window is a list of timestamps taken from each instance's own clock, it cannot take back
one request (a 304 is not charged: we need that), and a hit and the window's reset time
are two round trips. Here one Lua script, run atomically by Redis in one round trip, does
what `SlidingWindowLimiter` does, with the same boundaries:

- a sorted set per key, `newsagg:ratelimit:<key id>`, one member per counted request,
  scored by the Redis server's clock (`TIME`, microseconds): one clock for all instances;
- drop members older than the window (ZREMRANGEBYSCORE), count (ZCARD), add this request
  (ZADD) if under the limit, under a unique member name that the caller keeps: a refund
  removes exactly that member (ZREM), never another instance's request;
- answer allowed, count, the server's time and the oldest member's score, from which the
  reset time is computed exactly as in-process; the key expires an hour after its last
  hit, so idle windows cost nothing.

Requests that reach the limiter in the same turn of the event loop share one script call:
each window is still decided alone and in order, but a round trip through redis-py costs
tens of microseconds of CPU, more than the rest of a cache hit's rate limiting. Under load
one call carries a handful of requests; alone, a request waits no longer than before.

Redis unreachable: the request is answered all the same, counted by a per-process
`SlidingWindowLimiter` (so with N processes a key may get up to N times its limit while
Redis is gone) and `degraded()` says so. Redis is retried after a short backoff (0.25 s,
doubling to 2 s), so sharing resumes by itself; meanwhile no request waits for it. A
request that does try waits at most the connect or read timeout (tens of ms), and the
client's own retries are off, since falling back is the retry. The URL may carry a
password: it never appears in a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis.asyncio
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from newsagg.ratelimit import (
    UNLIMITED,
    WINDOW_SECONDS,
    SlidingWindowLimiter,
    Standing,
    standing,
)
from newsagg.settings import SettingsError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 0.05
# Redis answers this script in well under a millisecond; a read this slow means trouble.
READ_TIMEOUT_SECONDS = 0.1
FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 2.0
KEY_PREFIX = "newsagg:ratelimit:"
LOCAL = "local:"  # marks the entries of the per-process fallback

# KEYS: the windows of a batch of requests; ARGV[1]: the window (µs), then per request its
# limit, the member to add (or ''), the member to remove (or ''). Peek: neither; hit: add;
# refund: remove. Answers, per request in order: allowed, count, the server's time, the
# oldest member's score (or nil). Scripts that call TIME before writing are replicated by
# their effects (the default since Redis 5).
WINDOWS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local answers = {}
for i, key in ipairs(KEYS) do
    local limit, add, remove = tonumber(ARGV[i * 3 - 1]), ARGV[i * 3], ARGV[i * 3 + 1]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if remove ~= '' then
        redis.call('ZREM', key, remove)
    end
    local count = redis.call('ZCARD', key)
    local allowed = 0
    if add ~= '' and count < limit then
        redis.call('ZADD', key, now, add)
        redis.call('PEXPIRE', key, math.ceil(window / 1000))
        count = count + 1
        allowed = 1
    end
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
    table.insert(answers, allowed)
    table.insert(answers, count)
    table.insert(answers, now)
    table.insert(answers, oldest or false)
end
return answers
"""


@dataclass(slots=True)
class _Call:
    """One request's part of a batch, and where its answer goes."""

    key_id: int
    limit: int
    add: str
    remove: str
    answer: asyncio.Future[Standing | None]


def _standing(call: _Call, answer: list) -> Standing:
    allowed, count, now_us, oldest_us = answer
    oldest = None if oldest_us is None else float(oldest_us) / 1e6
    return standing(
        call.limit, count, oldest, now_us / 1e6, bool(allowed), call.add if allowed else None
    )


class RedisLimiter:
    def __init__(
        self,
        url: str,
        fallback: SlidingWindowLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            parse_url(url)
        except ValueError:
            # The parser's message could quote the URL, password included.
            raise SettingsError("NEWSAGG_REDIS_URL is not a valid Redis URL") from None
        self._url = url
        self._fallback = fallback or SlidingWindowLimiter()
        self._clock = clock
        # Members must be unique across instances: a random prefix per limiter, a counter.
        self._prefix = secrets.token_hex(8)
        self._serial = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: redis.asyncio.Redis | None = None
        self._script: AsyncScript | None = None
        self._batch: list[_Call] = []  # waiting for the next script call
        self._sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self._backoff = 0.0  # > 0 from a failure until the next success
        self._retry_at = 0.0

    def degraded(self) -> bool:
        return self._backoff > 0

    def _connected(self) -> tuple[redis.asyncio.Redis, AsyncScript]:
        # asyncio connections belong to the loop that made them; a test client or a new
        # server in the same process runs another loop, which gets connections of its own.
        loop = asyncio.get_running_loop()
        if self._client is None or self._script is None or self._loop is not loop:
            self._client = redis.asyncio.Redis.from_url(
                self._url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=READ_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(WINDOWS_SCRIPT)
            self._loop = loop
        return self._client, self._script

    async def _run(self, key_id: int, limit: int, add: str, remove: str) -> Standing | None:
        """The script's answer as a standing; None when Redis cannot be asked now."""
        if self._backoff and self._clock() < self._retry_at:
            return None
        loop = asyncio.get_running_loop()
        call = _Call(key_id, limit, add, remove, loop.create_future())
        self._batch.append(call)
        if len(self._batch) == 1:
            # Runs once this turn of the loop is over: the requests that reach this point
            # meanwhile join the batch.
            sending = loop.create_task(self._send())
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)
        return await call.answer

    async def _send(self) -> None:
        batch, self._batch = self._batch, []
        answers = None  # Redis failed: every request of the batch counts per process
        try:
            answers = await self._ask(batch)
        finally:  # whatever happened, no request is left waiting
            for i, call in enumerate(batch):
                if not call.answer.done():  # done: its request was cancelled meanwhile
                    call.answer.set_result(
                        None if answers is None else _standing(call, answers[i * 4 : i * 4 + 4])
                    )

    async def _ask(self, batch: list[_Call]) -> list | None:
        client, script = self._connected()
        args: list[str | int] = [int(WINDOW_SECONDS * 1e6)]
        for call in batch:
            args += (call.limit, call.add, call.remove)
        try:
            answers = await script(
                keys=[f"{KEY_PREFIX}{call.key_id}" for call in batch], args=args, client=client
            )
        except (RedisError, OSError) as exc:
            await self._failed(client, exc)
            return None
        if self._backoff:
            log.warning("Redis reachable again: rate-limit windows are shared again")
            self._backoff = 0.0
        return answers

    async def _failed(self, client: redis.asyncio.Redis, exc: Exception) -> None:
        if not self._backoff:
            # The class name only: a connection error's text can name the server.
            log.warning(
                "Redis unreachable (%s): rate-limit windows are per process until it is back",
                type(exc).__name__,
            )
        self._backoff = min(self._backoff * 2 or FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
        self._retry_at = self._clock() + self._backoff
        # Pooled connections to a restarted server are all dead: drop them, so the retry
        # after the backoff connects afresh instead of failing on the next stale one.
        with contextlib.suppress(RedisError, OSError):  # closing a broken socket may fail
            await client.connection_pool.disconnect()

    async def hit(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        member = f"{self._prefix}:{next(self._serial)}"
        shared = await self._run(key_id, limit, member, "")
        if shared is not None:
            return shared
        local = await self._fallback.hit(key_id, limit)
        return local if local.entry is None else replace(local, entry=LOCAL + local.entry)

    async def peek(self, key_id: int, limit: int | None) -> Standing:
        if limit is None:
            return UNLIMITED
        shared = await self._run(key_id, limit, "", "")
        return shared if shared is not None else await self._fallback.peek(key_id, limit)

    async def refund(self, key_id: int, limit: int | None, entry: str) -> Standing:
        if limit is None:
            return UNLIMITED
        if entry.startswith(LOCAL):
            return await self._fallback.refund(key_id, limit, entry.removeprefix(LOCAL))
        shared = await self._run(key_id, limit, "", entry)
        # Redis gone between the hit and its refund: the request stays counted there.
        return shared if shared is not None else await self._fallback.peek(key_id, limit)

    async def disconnect(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
            self._client = self._script = self._loop = None
