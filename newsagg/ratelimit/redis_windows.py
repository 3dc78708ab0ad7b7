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

Redis unreachable (newsagg.shared.RedisLink decides, for everything shared): the request
is answered all the same, counted by a per-process `SlidingWindowLimiter` (so with N
processes a key may get up to N times its limit while Redis is gone) and `degraded()`
says so. Meanwhile no request waits for Redis; a request that does try waits at most the
link's connect or read timeout (tens of ms).

Redis back (the link's backoff over and a call answered; the link drops connections that
may predate the outage, see newsagg.shared): every request is counted in Redis again, and
only Redis decides. What a process counted during the outage is not copied into Redis: a
restarted Redis lost its windows anyway, one that was only unreachable still holds what it
counted before, and copying per-process logs from N processes could count a request twice
or let a slow process re-add it long after. It stays in the fallback, where a 304 can
still refund it (its entry says `local:`) and where a second outage within the hour starts
from what this process already let through, erring on the side of the limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
from dataclasses import dataclass, replace

import redis.asyncio
from redis.exceptions import NoScriptError

from newsagg.ratelimit.base import (
    UNLIMITED,
    WINDOW_SECONDS,
    SlidingWindowLimiter,
    Standing,
    standing,
)
from newsagg.shared import RedisDown, RedisLink

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
WINDOWS_SCRIPT_SHA = hashlib.sha1(WINDOWS_SCRIPT.encode()).hexdigest()


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


async def _evaluate(client: redis.asyncio.Redis, keys: list[str], args: list[str | int]) -> list:
    try:
        return await client.evalsha(WINDOWS_SCRIPT_SHA, len(keys), *keys, *args)
    except NoScriptError:  # a server that has not seen it yet: EVAL teaches it
        return await client.eval(WINDOWS_SCRIPT, len(keys), *keys, *args)


class RedisLimiter:
    def __init__(self, link: RedisLink, fallback: SlidingWindowLimiter | None = None) -> None:
        self._link = link
        self._fallback = fallback or SlidingWindowLimiter()
        # Members must be unique across instances: a random prefix per limiter, a counter.
        self._prefix = secrets.token_hex(8)
        self._serial = itertools.count()
        self._batch: list[_Call] = []  # waiting for the next script call
        self._sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def _run(self, key_id: int, limit: int, add: str, remove: str) -> Standing | None:
        """The script's answer as a standing; None when Redis cannot be asked now."""
        if self._link.resting():
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
        keys = [f"{KEY_PREFIX}{call.key_id}" for call in batch]
        args: list[str | int] = [int(WINDOW_SECONDS * 1e6)]
        for call in batch:
            args += (call.limit, call.add, call.remove)
        try:
            return await self._link.run_async(lambda client: _evaluate(client, keys, args))
        except RedisDown:
            return None

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
