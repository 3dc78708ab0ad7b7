"""Exactly one harvester across every process and instance: a lease row in the store.

The holder renews it every `renew_seconds`; it lasts `lease_seconds` on the store's clock,
so when its holder dies (or hangs) another takes it once it expires. With the defaults a
dead leader is replaced within LEASE_SECONDS + the contenders' retry (45 s at most); a
leader that stops cleanly releases it, and the next contender takes it at its next try.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

from newsagg.errors import Unavailable
from newsagg.store import Store

log = logging.getLogger(__name__)

HARVESTER = "harvester"
LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0
# Contenders try to take the lease every 10-15 s: cheap (one statement), never in step.
RETRY_SECONDS = (10.0, 15.0)
MIN_WAIT_SECONDS = 0.05  # between two turns of a LeadingThread, however soon work is due


class Leadership:
    def __init__(
        self,
        store: Store,
        lease: str = HARVESTER,
        lease_seconds: float = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease  # the lease's name: one per kind of work that runs once
        self.holder = holder or uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self._store = store
        self._clock = clock
        self._renewed_at: float | None = None  # local clock; None: not the leader

    @property
    def leading(self) -> bool:
        """Whether this holder's lease is known to last (renewed within its duration)."""
        renewed = self._renewed_at
        return renewed is not None and self._clock() - renewed < self.lease_seconds

    def hold(self) -> bool:
        """Take or renew the lease now; whether this holder leads. An unreachable store
        means not leading: another instance may hold it meanwhile."""
        try:
            granted = self._store.lease_take(self.lease, self.holder, self.lease_seconds)
        except Unavailable:
            granted = False
        if granted != (self._renewed_at is not None):
            log.info("%s %s the lead", self.lease, "takes" if granted else "loses")
        self._renewed_at = self._clock() if granted else None
        return granted

    def keep(self) -> bool:
        """Renew the lease if it is due for renewal; whether this holder still leads.
        Called between pages, so a long round never outlives its lease."""
        renewed = self._renewed_at
        if renewed is not None and self._clock() - renewed < self.renew_seconds:
            return True
        return self.hold()

    def release(self) -> None:
        if self._renewed_at is None:
            return
        self._renewed_at = None
        with contextlib.suppress(Unavailable):  # then it expires by itself
            self._store.lease_release(self.lease, self.holder)


class LeadingThread:
    """A daemon thread that works while its lease is held. Each turn renews the lease when
    due (or tries to take it) and, leading, runs `work()`, which answers how many seconds
    to wait before the next turn; a contender waits a retry instead. An error is logged
    and the thread goes on (the store may come back). `stopping` is set by stop(): work
    checks it between steps, and waits on it rather than sleeping."""

    def __init__(
        self,
        name: str,
        leadership: Leadership,
        work: Callable[[], float],
        *,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.stopping = threading.Event()
        self._name = name
        self._leadership = leadership
        self._work = work
        self._retry_seconds = retry_seconds
        self._rng = rng or random.Random()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step and give up the lease (also when turns were run by
        hand, without the thread), so that another process takes it at its next try."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._leadership.release()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                if self._leadership.keep():
                    wait = self._work()
                else:
                    wait = self._rng.uniform(*self._retry_seconds)  # idle: one statement
            except Exception:  # the store unreachable, or a bug: log it, never give up
                log.exception("%s failed", self._name)
                wait = self._leadership.renew_seconds
            self.stopping.wait(max(MIN_WAIT_SECONDS, wait))
