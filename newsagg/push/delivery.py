"""Webhook delivery: claim what is due, send each on its own, record each attempt as it
ends, schedule the retry.

At least once: a delivery stays pending until a receiver answers 2xx or its retry schedule
is used up; then it fails and the search's webhook is disabled (saying why). Every attempt
sends the body and webhook-id the delivery was made with, signed at sending time with the
search's secrets as they are then (both during a rotation). A claim holds a delivery for
longer than one attempt can take, so a second deliverer (another instance that briefly
thinks it leads) never sends it at the same time.

Tenants are kept apart: each attempt runs on a sender of its own with its own deadline
(nothing waits for a batch's slowest member); a key has at most `per_key` attempts in
flight, so slow or hanging receivers hold that many senders and no more; claims take
turns between keys, then between a key's searches (`deliveries_claim`), so a key with a
long queue does not push another key's delivery back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import urllib3

from newsagg.keys import REVOKED
from newsagg.metrics import Metrics
from newsagg.push.webhooks import Resolve, delivery_headers, retry_delay, send, system_resolve
from newsagg.store import Store
from newsagg.store.push import AttemptRecord, DueDelivery, Outcome

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0
SENDERS = 64  # attempts in flight at once, each on its own thread (NEWSAGG_WEBHOOK_SENDERS)
IN_FLIGHT_PER_KEY = 4  # of one key's searches (NEWSAGG_WEBHOOK_IN_FLIGHT_PER_KEY)
OUTCOME_LABEL = {"delivered": "delivered", "pending": "retry", "failed": "failed"}
# A claim outlasts an attempt (resolution, connection and the send timeout) with room.
CLAIM_SECONDS = 60.0
SETTLE_SECONDS = 1.0  # run_once looks again at least this often while attempts are out
# Sender time a key used lately: seconds of attempts, halved every HALF_LIFE_SECONDS.
HALF_LIFE_SECONDS = 60.0
HEAVY_SECONDS = 1.0  # a key that used more lately does not take the senders kept in reserve
RESERVE_SHARE = 8  # one sender in this many is kept for keys that used little lately
USED_KEYS = 256  # the keys that used the senders most, ranked in a claim (the rest: as 0)


class Deliverer:
    def __init__(
        self,
        store: Store,
        schedule: Sequence[float],
        metrics: Metrics,
        *,
        allow_private: bool,
        resolve: Resolve = system_resolve,
        timeout: float = SEND_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        ca_certs: str | None = None,
        senders: int = SENDERS,
        per_key: int = IN_FLIGHT_PER_KEY,
    ) -> None:
        """`ca_certs`: the CA bundle file receivers' certificates are verified with;
        None is certifi's, as requests uses."""
        self._store = store
        self._schedule = tuple(schedule)
        self._metrics = metrics
        self._allow_private = allow_private
        self._resolve = resolve
        self._timeout = timeout
        self._clock = clock
        self._rng = rng or random.Random()
        self._ca_certs = ca_certs
        self._senders = senders
        self._per_key = per_key
        self._clients = threading.local()
        # Every sender thread's client, so that close() can end their kept-alive connections.
        self._opened: list[urllib3.PoolManager] = []
        self._opened_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # made by the first send, again after close
        self._lock = threading.Lock()
        # Attempts in flight, by (key id, search id).
        self._busy: Counter[tuple[int | None, int]] = Counter()
        self._settled = threading.Condition(self._lock)  # notified as each attempt ends
        self._claiming = threading.Lock()  # one claim at a time: the counts stay true
        self._reserve = senders // RESERVE_SHARE
        # Sender time each key used lately: (seconds, as of when) by key, and the start of
        # each attempt in flight. Among keys at the same turn the lightest goes first, so a
        # key whose receiver answers at once is not made to wait behind keys whose
        # receivers hang, however old their queues; and the heavy ones never take the
        # reserve, so a light key finds a sender free even when hanging receivers hold
        # every other one.
        self._spent: dict[int, tuple[float, float]] = {}
        self._started: dict[int, tuple[int, float]] = {}  # delivery id -> (key, start)
        # Outcomes of ended attempts, recorded together by the claiming thread: one writer
        # and one transaction for many attempts, not a write per sender thread (SQLite has
        # one writer at a time). A delivery's claim holds it until its outcome is recorded.
        self._ended: list[Outcome] = []
        # Set whenever an attempt ends (a sender is free): the push worker's sending
        # thread waits on it, and others ring it when they queue something.
        self.wake = threading.Event()

    def close(self) -> None:
        """Wait for the attempts in flight (each ends within its timeout) and end the
        senders' connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            # Nothing waits in the pool's queue (only free senders are given work), so
            # none is cancelled: each attempt claimed is made and recorded.
            pool.shutdown(wait=True)
        with self._claiming:
            self._record()
        # The sender threads have ended: nothing uses their clients any more.
        with self._opened_lock:
            clients, self._opened = self._opened, []
        for client in clients:
            client.clear()

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._busy.values())

    def dispatch(self) -> int:
        """Claim what is due, as far as senders are free and each key has room, and start
        each attempt on a sender of its own; how many started. Never waits on a send.
        The senders kept in reserve go only to keys that used little sender time lately."""
        with self._claiming:
            self._record()
            started = self._claim(light_only=False)
            return started + self._claim(light_only=True)

    def _record(self) -> None:
        """Record the outcomes of the attempts that ended, in one transaction (the caller
        holds the claiming lock); kept for the next try if the store is away."""
        with self._lock:
            ended, self._ended = self._ended, []
        if not ended:
            return
        try:
            self._store.deliveries_attempted(ended)
        except Exception:
            with self._lock:
                self._ended[:0] = ended
            raise
        for outcome in ended:
            self._metrics.webhook_attempts.labels(OUTCOME_LABEL[outcome.status]).inc()

    def _claim(self, *, light_only: bool) -> int:
        with self._lock:
            free = self._senders - sum(self._busy.values())
            busy = list(self._busy.elements())
            used = self._used_lately()
        room = free if light_only else free - self._reserve
        if room <= 0:
            return 0
        if light_only:  # a heavy key counts as holding its whole share: it gets none
            heavy = (key for key, seconds in used.items() if seconds >= HEAVY_SECONDS)
            busy += [(key, 0) for key in heavy for _ in range(self._per_key)]
        lightest = sorted(used, key=used.__getitem__)[-USED_KEYS:]
        hold_us = int(CLAIM_SECONDS * 1e6)
        due = self._store.deliveries_claim(
            self._now_us(), hold_us, room, self._per_key, busy, lightest
        )
        if due and self._pool is None:
            self._pool = ThreadPoolExecutor(self._senders, thread_name_prefix="webhook")
        for delivery in due:
            with self._lock:
                self._busy[delivery.key_id, delivery.search_id] += 1
                if delivery.key_id is not None:
                    self._started[delivery.id] = (delivery.key_id, time.monotonic())
            assert self._pool is not None
            self._pool.submit(self._attempt, delivery)
        return len(due)

    def _used_lately(self) -> dict[int, float]:
        """Sender seconds by key, decayed, with the attempts in flight as far as they got
        (the caller holds the lock); keys that used next to nothing are forgotten."""
        now = time.monotonic()
        used = {}
        for key, (seconds, since) in list(self._spent.items()):
            left = seconds * 0.5 ** ((now - since) / HALF_LIFE_SECONDS)
            if left < 0.001:
                del self._spent[key]
            else:
                used[key] = left
        for key, began in self._started.values():
            used[key] = used.get(key, 0.0) + now - began
        return used

    def run_once(self) -> int:
        """Send every delivery due now and wait for those attempts to end (a round by
        hand, for tests and one-off runs; the push worker dispatches and never waits);
        how many were attempted."""
        attempted = 0
        while True:
            started = self.dispatch()
            attempted += started
            with self._lock:
                idle = not started and not self._busy
                if not idle:
                    self._settled.wait(SETTLE_SECONDS)
            if idle:
                with self._claiming:
                    self._record()
                return attempted

    def _attempt(self, delivery: DueDelivery) -> None:
        """One delivery, on its sender: sent, its outcome handed over to be recorded, its
        sender freed."""
        outcome: Outcome | None = None
        try:
            outcome = self._deliver(delivery)
        except Exception:  # a bug: the claim runs out, then the delivery is tried again
            log.exception("webhook delivery %s failed", delivery.msg_id)
        finally:
            with self._lock:
                if outcome is not None:
                    self._ended.append(outcome)
                self._busy[delivery.key_id, delivery.search_id] -= 1
                self._busy += Counter()  # drops what reached 0
                began = self._started.pop(delivery.id, None)
                if began is not None:
                    key, start = began
                    now = time.monotonic()
                    seconds, since = self._spent.get(key, (0.0, now))
                    decayed = seconds * 0.5 ** ((now - since) / HALF_LIFE_SECONDS)
                    self._spent[key] = (decayed + now - start, now)
                self._settled.notify_all()
            self.wake.set()

    def _deliver(self, delivery: DueDelivery) -> Outcome:
        """Send one delivery (on a sender thread); what became of it."""
        at_us = self._now_us()
        if delivery.revoked:  # nothing more goes out for a revoked key, queued or not
            return Outcome(delivery.id, AttemptRecord(at_us, None, REVOKED, 0), "failed")
        # A ping tests a disabled webhook too (before it is set again); nothing else goes
        # to a webhook removed or given up since the delivery was made.
        given_up = delivery.disabled and delivery.kind != "webhook.ping"
        if delivery.webhook_url is None or given_up or not delivery.secrets:
            attempt = AttemptRecord(at_us, None, "the search has no active webhook", 0)
            return Outcome(delivery.id, attempt, "failed")
        body = delivery.body.encode()
        headers = delivery_headers(
            delivery.secrets, delivery.msg_id, datetime.fromtimestamp(at_us / 1e6, UTC), body
        )
        sent = send(
            self._client(),
            delivery.webhook_url,
            headers,
            body,
            timeout=self._timeout,
            allow_private=self._allow_private,
            resolve=self._resolve,
            ca_certs=self._ca_certs,
        )
        attempt = AttemptRecord(at_us, sent.status_code, sent.error, sent.duration_ms)
        if sent.ok:
            return Outcome(delivery.id, attempt, "delivered")
        made = delivery.attempts + 1
        delay = retry_delay(self._schedule, made, self._rng)
        next_us = None if delay is None else self._now_us() + int(delay * 1e6)
        # One line per failed attempt; never the URL (its query may hold the receiver's
        # token), the secret or the body: the error texts do not repeat the URL either.
        log.warning(
            "webhook attempt failed: search %d, webhook-id %s, attempt %d: %s; next attempt %s",
            delivery.search_id,
            delivery.msg_id,
            made,
            sent.error or f"HTTP {sent.status_code}",
            "none"
            if next_us is None
            else datetime.fromtimestamp(next_us / 1e6, UTC).isoformat(timespec="seconds"),
        )
        if next_us is None:
            reason = f"gave up on delivery {delivery.msg_id} after {made} attempts: " + (
                sent.error or f"HTTP {sent.status_code}"
            )
            log.warning("webhook of search %d disabled: %s", delivery.search_id, reason)
            return Outcome(delivery.id, attempt, "failed", disable=(delivery.search_id, reason))
        return Outcome(delivery.id, attempt, "pending", next_us)

    def _client(self) -> urllib3.PoolManager:
        """One client per sender thread, its connections kept alive per receiver address
        (urllib3, unlike requests, takes no proxy or .netrc from the environment)."""
        client = getattr(self._clients, "client", None)
        if client is None:
            client = urllib3.PoolManager()
            self._clients.client = client
            with self._opened_lock:
                self._opened.append(client)
        return client

    def _now_us(self) -> int:
        return int(self._clock() * 1_000_000)
