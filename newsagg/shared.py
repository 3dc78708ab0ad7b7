"""Redis as the state instances share (NEWSAGG_REDIS_URL): provider results, the lock
that makes one instance fetch a query while the others wait, provider health; the
rate-limit windows (newsagg.ratelimit.redis_windows) and the key cache's revocations
(newsagg.key_cache) go through the same link.

Redis only ever holds a shared copy: every caller keeps an in-process fallback. The link
is one verdict on whether Redis answers, for all of them: after a failure, calls fail at
once with `RedisDown` (no request waits on a dead socket) for 0.25 s, doubling to 2 s
while failures go on; the next call after that tries again, so sharing resumes by itself
once Redis is back. Two clients share the verdict: a blocking one for the feed's worker
threads and handlers Connexion runs off the event loop, and an asyncio one per event loop
for the rate limiter, which runs on the loop.

Recovery is the link's, for every caller and both clients: a connection opened before
Redis failed may be dead (a restarted server does not know it), and used after Redis is
back it would fail its first command, which would read as a new outage and put every
caller back on its fallback while Redis answers. So a failure marks every pooled
connection as suspect: each client drops its idle ones before its next call. A restart
nobody noticed (no call failed while Redis was down) leaves such a connection too: the
first connection failure after answers is tried once more on a fresh connection before
it counts as Redis failing.

Nothing here logs or raises the URL: it may carry a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import LockError, RedisError
from redis.lock import Lock
from redis.retry import Retry

from newsagg.settings import SettingsError
from providers.base import UpstreamError

log = logging.getLogger(__name__)

T = TypeVar("T")

# A healthy Redis on the same network answers in well under a millisecond; waiting longer
# than this only delays requests that could be answered from in-process state.
CONNECT_TIMEOUT_SECONDS = 0.05
READ_TIMEOUT_SECONDS = 0.1
FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 2.0
PREFIX = "newsagg:"
# Long enough for every waiter (they look every few tens of ms) to see a failed fetch; a
# waiter only takes a failure that happened while it waited.
FAILURE_KEPT_MS = 1000


class RedisDown(Exception):
    """Redis did not answer (or failed moments ago): use the in-process fallback."""


def _failure(exc: BaseException) -> bool:
    """Whether `exc` means Redis cannot be used now. A lock that is no longer ours is
    the caller's business, not Redis failing."""
    return isinstance(exc, (RedisError, OSError)) and not isinstance(exc, LockError)


def _dropped(exc: BaseException) -> bool:
    """Whether `exc` is a connection lost or refused (not a timeout: a server that does
    not answer in time is not asked twice)."""
    return isinstance(exc, (redis.ConnectionError, ConnectionError))


class RedisLink:
    """The service's Redis: its clients and whether it answered lately."""

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        options = {
            "socket_timeout": READ_TIMEOUT_SECONDS,
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        }
        try:
            parse_url(url)
            self.client = redis.Redis.from_url(
                url,
                # redis-py retries with backoff by default: seconds per call to a dead
                # server. Falling back is our retry.
                retry=Retry(NoBackoff(), 0),
                **options,
            )
        except ValueError:  # redis-py's message may quote part of the URL: not shown
            raise SettingsError(
                "NEWSAGG_REDIS_URL must be a redis://, rediss:// or unix:// URL"
            ) from None
        self._url = url
        self._async_options = options
        self._clock = clock
        self._backoff = 0.0  # > 0 from a failure until the next success
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_client: redis.asyncio.Redis | None = None
        # Failures so far, and how many of them each client's pool has been emptied for:
        # a connection pooled before the latest failure may be dead.
        self._failures = 0
        self._sync_dropped_for = 0
        self._async_dropped_for = 0

    @property
    def degraded(self) -> bool:
        return self._backoff > 0

    def resting(self) -> bool:
        """Whether Redis failed moments ago, so that calls now fail without trying."""
        return self._backoff > 0 and self._clock() < self._retry_at

    def run(self, operation: Callable[[redis.Redis], T]) -> T:
        """`operation(client)`'s result; RedisDown if Redis does not answer."""
        if self.resting():
            raise RedisDown
        pool = self.client.connection_pool
        was_answering = not self._backoff
        if self._sync_dropped_for != self._failures:
            self._sync_dropped_for = self._failures
            pool.disconnect(inuse_connections=False)  # others' are theirs to lose
        try:
            result = operation(self.client)
        except Exception as exc:
            if not _failure(exc):
                raise
            if not (was_answering and _dropped(exc)):
                self._failed(exc)
                raise RedisDown from None
            pool.disconnect(inuse_connections=False)  # see _once_more
            result = self._once_more(lambda: operation(self.client))
        self._answered()
        return result

    async def run_async(self, operation: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T:
        """`await operation(client)` with the running loop's client; RedisDown if Redis does
        not answer."""
        if self.resting():
            raise RedisDown
        client = self._client_for_loop()
        was_answering = not self._backoff
        if self._async_dropped_for != self._failures:
            self._async_dropped_for = self._failures
            await self._drop(client, inuse_connections=False)
        try:
            result = await operation(client)
        except Exception as exc:
            if not _failure(exc):
                raise
            if not (was_answering and _dropped(exc)):
                self._failed(exc)
                # Pooled connections to a restarted server are all dead: drop them, so the
                # retry after the backoff connects afresh instead of failing on the next one.
                await self._drop(client)
                raise RedisDown from None
            await self._drop(client, inuse_connections=False)  # see _once_more
            try:
                result = await operation(client)
            except Exception as again:
                if not _failure(again):
                    raise
                self._failed(again)
                await self._drop(client)
                raise RedisDown from None
        self._answered()
        return result

    def _once_more(self, attempt: Callable[[], T]) -> T:
        """A connection failed although Redis answered until now: most likely one opened
        before Redis restarted unnoticed, so the command never reached the new server. It
        is tried once more on a fresh connection before Redis counts as failing. (Should the
        server have run it and only its answer been lost, the command runs twice: for a
        rate limit, one request counted twice, the error on the side of the limit.)"""
        try:
            return attempt()
        except Exception as exc:
            if not _failure(exc):
                raise
            self._failed(exc)
            raise RedisDown from None

    @staticmethod
    async def _drop(client: redis.asyncio.Redis, inuse_connections: bool = True) -> None:
        with contextlib.suppress(RedisError, OSError):  # closing a broken socket may fail
            await client.connection_pool.disconnect(inuse_connections=inuse_connections)

    def _client_for_loop(self) -> redis.asyncio.Redis:
        # asyncio connections belong to the loop that made them; a test client or a new
        # server in the same process runs another loop, which gets connections of its own.
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._loop is not loop:
            self._async_client = redis.asyncio.Redis.from_url(
                self._url, retry=Retry(NoBackoff(), 0), **self._async_options
            )
            self._loop = loop
            self._async_dropped_for = self._failures  # no connection yet: none stale
        return self._async_client

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self._failures += 1
            first = not self._backoff
            self._backoff = min(self._backoff * 2 or FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
            self._retry_at = self._clock() + self._backoff
        if first:  # one line per outage; the class name only: the text can name the server
            log.warning(
                "Redis unreachable (%s): in-process state only until it answers again",
                type(exc).__name__,
            )

    def _answered(self) -> None:
        if not self._backoff:
            return
        with self._lock:
            recovered, self._backoff = self._backoff > 0, 0.0
        if recovered:
            log.warning("Redis reachable again: state is shared again")

    def reachable(self) -> bool:
        """Ask Redis now (unless it failed moments ago)."""
        try:
            return bool(self.run(lambda client: client.ping()))
        except RedisDown:
            return False

    async def disconnect(self) -> None:
        """Close the running loop's connections (a later loop makes its own)."""
        if self._async_client is not None and self._loop is asyncio.get_running_loop():
            client, self._async_client, self._loop = self._async_client, None, None
            await client.aclose()

    def close(self) -> None:
        self.client.close()


class SharedResults:
    """Provider results by key: (stored_at, payload), gone from Redis `max_age` seconds
    after `stored_at` (wall-clock epoch: every instance reads the same age).

    Also the lock that lets one instance fetch a key while the others wait, and the
    failure of that fetch, kept briefly, so that those waiting get it as in-process
    joiners of a failed flight do, instead of calling the provider again."""

    def __init__(self, link: RedisLink, max_age: float) -> None:
        self._link = link
        self.max_age = max_age

    def look(self, key: str) -> tuple[tuple[float, bytes] | None, Failed | None]:
        """The result kept for `key`, and the latest failure to fetch it (one round trip)."""
        result, failure = self._link.run(
            lambda client: client.mget(PREFIX + "result:" + key, PREFIX + "failed:" + key)
        )
        found = None
        if result is not None:
            stored_at, _, payload = result.partition(b" ")
            found = float(stored_at), payload
        if failure is None:
            return found, None
        failed_at, code, message, retry_after = json.loads(failure)
        return found, Failed(failed_at, UpstreamError(code, message, retry_after))

    def put(self, key: str, stored_at: float, payload: bytes) -> None:
        left_ms = int((stored_at + self.max_age - time.time()) * 1000)
        if left_ms > 0:
            value = repr(stored_at).encode() + b" " + payload
            self._link.run(lambda client: client.set(PREFIX + "result:" + key, value, px=left_ms))

    def fail(self, key: str, error: UpstreamError) -> None:
        """Fetching `key` failed just now (its message is safe to show: no key, no URL)."""
        value = json.dumps([time.time(), error.code, error.message, error.retry_after])
        self._link.run(
            lambda client: client.set(PREFIX + "failed:" + key, value, px=FAILURE_KEPT_MS)
        )

    def lock(self, key: str, seconds: float) -> Lock | None:
        """The fetch lock of `key`, held for at most `seconds`; None when another holds it."""
        lock = Lock(self._link.client, PREFIX + "flight:" + key, timeout=seconds)
        return lock if self._link.run(lambda _client: lock.acquire(blocking=False)) else None

    def unlock(self, lock: Lock) -> None:
        # Unreleased (Redis down, or the lock expired and another took it), it expires by
        # itself, and a waiter then fetches or times out.
        with contextlib.suppress(RedisDown, LockError):
            self._link.run(lambda _client: lock.release())


@dataclass(frozen=True, slots=True)
class Failed:
    at: float  # wall-clock epoch
    error: UpstreamError
