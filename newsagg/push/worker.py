"""The push worker: one thread per process; the one holding the "push" lease (one across
every process and instance, as the harvester's) matches new articles and sends webhooks.

It looks every TICK_SECONDS: from an article entering the archive to its webhook leaving
takes about a tick plus the send.
"""

from __future__ import annotations

import logging
import random
import threading

from newsagg.harvest.leadership import RETRY_SECONDS, Leadership
from newsagg.push.delivery import Deliverer
from newsagg.push.matcher import Matcher
from newsagg.store import Store

log = logging.getLogger(__name__)

PUSH_LEASE = "push"
TICK_SECONDS = 0.5


class PushWorker:
    def __init__(
        self,
        store: Store,
        matcher: Matcher,
        deliverer: Deliverer,
        leadership: Leadership | None = None,
        tick_seconds: float = TICK_SECONDS,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
    ) -> None:
        self.matcher = matcher
        self.deliverer = deliverer
        self.leadership = leadership or Leadership(store, PUSH_LEASE)
        self._tick = tick_seconds
        self._retry_seconds = retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="push", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step (a send in flight ends within its timeout) and give
        up the lease, so that another instance takes over at its next try."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.leadership.release()  # also when steps were run by hand, without the thread
        self.deliverer.close()

    def step(self) -> None:
        """Match what is new, then send what is due. The caller holds the lead."""
        self.matcher.run_until_caught_up(lambda: not self._stop.is_set() and self.leadership.keep())
        if not self._stop.is_set() and self.leadership.keep():
            self.deliverer.run_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.leadership.keep():
                    self.step()
                    wait = self._tick
                else:
                    wait = random.uniform(*self._retry_seconds)
            except Exception:  # the store unreachable, or a bug: log it, never give up
                log.exception("push step failed")
                wait = self.leadership.renew_seconds
            self._stop.wait(wait)
        self.leadership.release()
