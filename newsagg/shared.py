"""Redis as the state instances share (NEWSAGG_REDIS_URL): provider results, the lock
that makes one instance fetch a query while the others wait, provider health.

Redis only ever holds a shared copy: every caller keeps an in-process fallback. While
Redis does not answer, calls fail at once with `RedisDown` for `RETRY_SECONDS` (no
request waits on a dead socket), then the next call tries again, so sharing resumes by
itself once Redis is back. Calls are blocking (redis-py's sync client): they run on the
feed's worker threads and in handlers Connexion runs off the event loop, never on it.

Nothing here logs or raises the URL: it may carry a password.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import LockError
from redis.lock import Lock
from redis.retry import Retry

from newsagg.settings import SettingsError

log = logging.getLogger(__name__)

T = TypeVar("T")

# A healthy Redis on the same network answers in well under a millisecond; waiting longer
# than this only delays requests that could be answered from in-process state.
SOCKET_TIMEOUT_SECONDS = 0.1
RETRY_SECONDS = 0.5  # after a failure, Redis is left alone this long
PREFIX = "newsagg:"


class RedisDown(Exception):
    """Redis did not answer (or failed moments ago): use the in-process fallback."""


class RedisLink:
    """One connection pool and whether Redis answered lately."""

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        try:
            self.client = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                # redis-py retries with backoff by default: seconds per call to a dead server.
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError:  # redis-py's message may quote part of the URL: not shown
            raise SettingsError(
                "NEWSAGG_REDIS_URL must be a redis://, rediss:// or unix:// URL"
            ) from None
        self._clock = clock
        self._down_until: float | None = None  # None while Redis answers
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def run(self, operation: Callable[[redis.Redis], T]) -> T:
        """`operation(client)`'s result; RedisDown if Redis does not answer."""
        down_until = self._down_until
        if down_until is not None and self._clock() < down_until:
            raise RedisDown
        try:
            result = operation(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            with self._lock:
                was_up, self._down_until = self._down_until is None, self._clock() + RETRY_SECONDS
            if was_up:  # one line per outage; the exception's text may name the host only
                log.warning("Redis unreachable (%s): in-process state only", type(exc).__name__)
            raise RedisDown from None
        if down_until is not None:
            with self._lock:
                recovered, self._down_until = self._down_until is not None, None
            if recovered:
                log.warning("Redis reachable again: state is shared again")
        return result

    def reachable(self) -> bool:
        """Ask Redis now (unless it failed moments ago)."""
        try:
            return bool(self.run(lambda client: client.ping()))
        except RedisDown:
            return False

    def close(self) -> None:
        self.client.close()


class SharedResults:
    """Provider results by key: (stored_at, payload), gone from Redis `max_age` seconds
    after `stored_at` (wall-clock epoch: every instance reads the same age).

    Also the lock that lets one instance fetch a key while the others wait for its result."""

    def __init__(self, link: RedisLink, max_age: float) -> None:
        self._link = link
        self.max_age = max_age

    def get(self, key: str) -> tuple[float, bytes] | None:
        raw = self._link.run(lambda client: client.get(PREFIX + "result:" + key))
        if raw is None:
            return None
        stored_at, _, payload = raw.partition(b" ")
        return float(stored_at), payload

    def put(self, key: str, stored_at: float, payload: bytes) -> None:
        left_ms = int((stored_at + self.max_age - time.time()) * 1000)
        if left_ms > 0:
            value = repr(stored_at).encode() + b" " + payload
            self._link.run(lambda client: client.set(PREFIX + "result:" + key, value, px=left_ms))

    def lock(self, key: str, seconds: float) -> Lock | None:
        """The fetch lock of `key`, held for at most `seconds`; None when another holds it."""
        lock = Lock(self._link.client, PREFIX + "flight:" + key, timeout=seconds)
        return lock if self._link.run(lambda _client: lock.acquire(blocking=False)) else None

    def unlock(self, lock: Lock) -> None:
        # Not released: it expires by itself, and a waiter then fetches or times out.
        with contextlib.suppress(RedisDown, LockError):
            self._link.run(lambda _client: lock.release())
