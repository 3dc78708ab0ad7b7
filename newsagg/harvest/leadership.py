"""Exactly one harvester across every process and instance: a lease row in the store.

The holder renews it every `renew_seconds`; it lasts `lease_seconds` on the store's clock,
so when its holder dies (or hangs) another takes it once it expires. With the defaults a
dead leader is replaced within LEASE_SECONDS + the contenders' retry (45 s at most); a
leader that stops cleanly releases it, and the next contender takes it at its next try.
"""

from __future__ import annotations

import contextlib
import logging
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
