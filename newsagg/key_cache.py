"""Verified API keys remembered per process, without giving up "a revocation acts at once".

Two ways to know that a remembered key is still active, one per deployment:
- `FileKeyCache`, on an SQLite file without Redis: SQLite says whether anything was
  committed to the file since it last asked, which is cheaper than reading the key.
- `SharedKeyCache`, with Redis, whatever the store: below.

With the keys in PostgreSQL, checking one is a network round trip on every request: on a
cache hit it was half of the CPU time (the profile in the README). With Redis configured,
each process remembers the keys it has verified, and a revocation is not answered until
no process can still accept the key from memory:

- An entry is trusted for `ttl` seconds from when its database read began, so no entry
  outlives a revocation by more than `ttl` whatever else fails.
- Each process subscribes to a Redis channel and, once the subscription is confirmed,
  registers itself (an expiring Redis key, renewed every second). It uses its entries
  only while its registration is sure to be current (a lease on its own clock, which
  starts before Redis's); a lapse, or a new subscription, empties it first.
- A revocation commits in the database, then publishes on the channel. Every process
  forgets every entry and acknowledges. The revoker answers once each registered process
  has acknowledged; if one has not (stuck, partitioned), or Redis cannot be reached, once
  `ttl` has passed since the commit, by when every entry read before it has expired.
- A database read that began before a revocation reached the process is not remembered
  (an epoch counter), so a read racing a revocation cannot put the key back.

A revocation empties every process's memory rather than one entry: revocations are rare,
and refilling costs one database read per active key.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from newsagg.settings import Settings
from newsagg.shared import PREFIX, RedisDown, RedisLink
from newsagg.store import KeyRecord, Store
from newsagg.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

CHANNEL = PREFIX + "keys:revoked"
REGISTRY = PREFIX + "keys:instances"  # the ids of registered subscriptions (a set)
INSTANCE = PREFIX + "keys:instance:"  # + an id: that registration, expiring unless renewed
ACKS = PREFIX + "keys:acks:"  # + a revocation's random id: the ids that dropped their keys
LEASE_SECONDS = 3.0  # a registration's life in Redis, and the process's lease
RENEW_SECONDS = 1.0
RECONNECT_SECONDS = 0.5  # after a failed subscription
POLL_SECONDS = 0.1  # the listener's longest wait for a message: how soon `close` returns
# How often the revoker looks for acknowledgements. Non-blocking reads: a BLPOP's wait
# would have to fit under the link's 0.1 s socket timeout, and on a loaded machine one
# that did not counted as Redis failing.
ACK_POLL_SECONDS = 0.01
RETRY_SECONDS = 0.25  # after Redis failed to answer a revoker: about the link's first rest
MAX_ENTRIES = 10_000  # a full memory is emptied: one database read per active key refills it


class KeyCache(Protocol):
    """What `KeyRing` asks of a key cache."""

    def lookup(self, digest: str) -> KeyRecord | None:
        """The active key with this digest, if remembered and still to be trusted (no
        network I/O)."""

    def ticket(self) -> Any:
        """Taken before the store is read; `remember` files the record under it."""

    def remember(self, digest: str, record: KeyRecord, ticket: Any) -> None: ...

    def announce_revocation(self) -> None:
        """Called after a key was revoked in the store: returns once no process can still
        accept it from memory."""


def key_cache_for(settings: Settings, link: RedisLink | None) -> SharedKeyCache | None:
    """The shared key cache these settings ask for (not yet listening), if any: Redis is
    needed."""
    if link is None or settings.key_cache_seconds <= 0:
        return None
    return SharedKeyCache(link, settings.key_cache_seconds)


def file_key_cache_for(settings: Settings, store: Store) -> FileKeyCache | None:
    """The key cache of a deployment without Redis, if any: only an SQLite file can tell
    cheaply that nothing changed (PostgreSQL without Redis reads the key every time). Not
    when the rate-limit windows live in the file as well: other workers' requests would
    commit to it all the time, so the cache would cost a statement and save nothing."""
    if (
        settings.key_cache_seconds <= 0
        or not isinstance(store, SqliteStore)
        or settings.windows_live_in() == "database"
    ):
        return None
    return FileKeyCache(store)


class FileKeyCache:
    """Keys verified in an SQLite file, remembered while nothing was committed to it.

    SQLite counts, for each connection, the commits made through other connections, in any
    thread or process (`PRAGMA data_version`: one statement that reads no table, a third
    of the cost of reading a key). Every lookup asks first and forgets everything on any
    change, so a revocation made by another worker, by `newsagg keys revoke` or on another
    thread is refused from the next request on. The count is per connection and the store
    has one connection per thread, so the memory is per thread too. A revocation made
    through the same connection does not move its count: `announce_revocation` forgets
    instead.

    Other commits (new articles, new keys) empty the memory as well: then a key is read
    as without a cache, after one more statement."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._threads = threading.local()  # .stamp, .entries: what this thread knows

    def lookup(self, digest: str) -> KeyRecord | None:
        threads, stamp = self._threads, self._store.change_stamp()
        if getattr(threads, "stamp", None) != stamp:
            threads.stamp, threads.entries = stamp, {}
        return threads.entries.get(digest)

    def ticket(self) -> Any:
        # The stamp this thread read last is as good as a fresh one, or more cautious: an
        # entry filed under it is forgotten at the next lookup if anything was committed
        # since, whether before the key was read or after.
        return getattr(self._threads, "stamp", None) or self._store.change_stamp()

    def remember(self, digest: str, record: KeyRecord, ticket: Any) -> None:
        threads = self._threads
        if getattr(threads, "stamp", None) != ticket or len(threads.entries) >= MAX_ENTRIES:
            threads.stamp, threads.entries = ticket, {}
        threads.entries[digest] = record

    def announce_revocation(self) -> None:
        self._threads = threading.local()  # every thread's memory, not just this one's


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a database read: the entry is remembered only if no revocation
    arrived meanwhile, and is trusted from when the read began."""

    epoch: int
    started: float


class SharedKeyCache:
    def __init__(
        self, link: RedisLink, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._link = link
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[KeyRecord, float]] = {}  # digest -> (record, until)
        self._epoch = 0
        self._lease_until = 0.0  # nothing is trusted until registered
        self._stopped = threading.Event()
        self._listener: threading.Thread | None = None

    # Request side: no I/O.

    def lookup(self, digest: str) -> KeyRecord | None:
        """The active key with this digest if it is remembered and may be trusted now."""
        now = self._clock()
        if now >= self._lease_until:
            return None
        entry = self._entries.get(digest)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]

    def listening(self) -> bool:
        """Whether revocations reach this process now, so that it may trust its memory."""
        return self._clock() < self._lease_until

    def ticket(self) -> Ticket:
        return Ticket(self._epoch, self._clock())

    def remember(self, digest: str, record: KeyRecord, ticket: Ticket) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        if ticket.epoch == self._epoch:
            self._entries[digest] = (record, ticket.started + self.ttl)
            # A revocation that arrived while the entry was stored is in the epoch now.
            if ticket.epoch != self._epoch:
                self._entries.pop(digest, None)

    def _forget_all(self) -> None:
        # The epoch first: a read finishing now must not store what was just dropped.
        self._epoch += 1
        self._entries.clear()

    # Revoker side.

    def announce_revocation(self) -> None:
        """Called after a key was revoked in the store: returns once no process can still
        accept it from memory (see the module's docstring)."""
        deadline = self._clock() + self.ttl
        # One slow reply is not the end: the revocation is announced again (forgetting
        # twice is harmless) until every process confirms or the ttl has passed.
        while self._clock() < deadline:
            try:
                if self._confirmed(deadline):
                    return
            except RedisDown:  # the link has logged it
                time.sleep(min(RETRY_SECONDS, max(0.0, deadline - self._clock())))
        log.warning(
            "A key revocation was not confirmed by every process: it was answered once keys"
            " they remembered before it had expired (%.3g s)",
            self.ttl,
        )

    def _confirmed(self, deadline: float) -> bool:
        """Publish a revocation; whether every registered process acknowledged it in time."""
        revocation = secrets.token_hex(8)
        run = self._link.run
        run(lambda client: client.publish(CHANNEL, revocation))
        # Read after publishing: a process registered by now was subscribed before it.
        members = [m.decode() for m in run(lambda client: client.smembers(REGISTRY))]
        present = run(lambda client: _each_exists(client, [INSTANCE + m for m in members]))
        waiting = {m for m, alive in zip(members, present, strict=True) if alive}
        if gone := set(members) - waiting:  # lapsed: their processes trust nothing now
            run(lambda client: client.srem(REGISTRY, *gone))
        while waiting:
            acked = run(lambda client: client.lpop(ACKS + revocation, len(waiting)))
            waiting.difference_update(m.decode() for m in acked or ())
            if not waiting or self._clock() >= deadline:
                break
            time.sleep(ACK_POLL_SECONDS)
        return not waiting

    # Process side: the listener thread.

    def start(self) -> None:
        self._listener = threading.Thread(target=self._listen, name="key-cache", daemon=True)
        self._listener.start()

    def close(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.join(timeout=1)

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                self._subscription()
            except (redis.RedisError, OSError) as exc:
                # The class name only: a connection error's text can name the server.
                log.warning(
                    "Key cache off until Redis answers again (%s): keys are checked in the"
                    " store on every request",
                    type(exc).__name__,
                )
            self._lease_until = 0.0
            self._forget_all()
            self._stopped.wait(RECONNECT_SECONDS)

    def _subscription(self) -> None:
        client = self._link.client
        instance = secrets.token_hex(8)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            confirmed = pubsub.get_message(timeout=RENEW_SECONDS)
            if confirmed is None or confirmed["type"] != "subscribe":
                raise redis.ConnectionError("no subscription confirmed")
            # Only from here is every revocation sure to reach this process: forget what
            # was read before.
            self._forget_all()
            renew_at = 0.0
            while not self._stopped.is_set():
                if self._clock() >= renew_at:
                    started = self._clock()
                    if started >= self._lease_until:  # lapsed: a revoker may have skipped us
                        self._forget_all()
                    with client.pipeline() as pipe:
                        pipe.set(INSTANCE + instance, b"", px=int(LEASE_SECONDS * 1000))
                        pipe.sadd(REGISTRY, instance).execute()
                    self._lease_until = started + LEASE_SECONDS
                    renew_at = started + RENEW_SECONDS
                wait = min(POLL_SECONDS, max(0.0, renew_at - self._clock()))
                message = pubsub.get_message(timeout=wait)
                if message is not None and message["type"] == "message":
                    self._forget_all()
                    acks = ACKS + message["data"].decode()
                    with client.pipeline() as pipe:
                        pipe.rpush(acks, instance).expire(acks, int(self.ttl) + 1).execute()
        finally:
            self._lease_until = 0.0
            with contextlib.suppress(redis.RedisError, OSError), client.pipeline() as pipe:
                pipe.delete(INSTANCE + instance).srem(REGISTRY, instance).execute()
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()


def _each_exists(client: redis.Redis, names: list[str]) -> list[int]:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(name)
        return pipe.execute()
