"""Webhook delivery: claim what is due, send it, record the attempt, schedule the retry.

At least once: a delivery stays pending until a receiver answers 2xx or its retry schedule
is used up; then it fails and the search's webhook is disabled (saying why). Every attempt
sends the body and webhook-id the delivery was made with, signed at sending time with the
search's secrets as they are then (both during a rotation). A claim holds a delivery for
longer than one attempt can take, so a second deliverer (another instance that briefly
thinks it leads) never sends it at the same time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import urllib3

from newsagg.metrics import Metrics
from newsagg.push.webhooks import Resolve, delivery_headers, retry_delay, send, system_resolve
from newsagg.store import Store
from newsagg.store.push import AttemptRecord, DueDelivery, Outcome

log = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0
CLAIM_BATCH = 32
SENDERS = 8  # deliveries in flight at once: one slow receiver does not hold the others
OUTCOME_LABEL = {"delivered": "delivered", "pending": "retry", "failed": "failed"}
# A claim outlasts an attempt (resolution, connection and the send timeout) with room.
CLAIM_SECONDS = 60.0


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
        self._clients = threading.local()
        # Every sender thread's client, so that close() can end their kept-alive connections.
        self._opened: list[urllib3.PoolManager] = []
        self._opened_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # made by the first send, again after close

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        # The sender threads have ended: nothing uses their clients any more.
        with self._opened_lock:
            clients, self._opened = self._opened, []
        for client in clients:
            client.clear()

    def run_once(self) -> int:
        """Send every delivery due now (in batches); how many were attempted."""
        attempted = 0
        while True:
            now_us = self._now_us()
            due = self._store.deliveries_claim(now_us, int(CLAIM_SECONDS * 1e6), CLAIM_BATCH)
            if not due:
                return attempted
            # list(): wait for the whole batch, and raise a sender's unexpected error here.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook")
            outcomes = list(self._pool.map(self._deliver, due))
            self._store.deliveries_attempted(outcomes)
            for outcome in outcomes:
                self._metrics.webhook_attempts.labels(OUTCOME_LABEL[outcome.status]).inc()
            attempted += len(due)
            if len(due) < CLAIM_BATCH:
                return attempted

    def _deliver(self, delivery: DueDelivery) -> Outcome:
        """Send one delivery (on a sender thread); what became of it."""
        at_us = self._now_us()
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
        if delay is None:
            reason = f"gave up on delivery {delivery.msg_id} after {made} attempts: " + (
                sent.error or f"HTTP {sent.status_code}"
            )
            log.warning("webhook of search %d disabled: %s", delivery.search_id, reason)
            return Outcome(delivery.id, attempt, "failed", disable=(delivery.search_id, reason))
        return Outcome(delivery.id, attempt, "pending", self._now_us() + int(delay * 1e6))

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
