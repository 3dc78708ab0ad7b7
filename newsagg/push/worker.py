"""The push worker: the instance holding the "push" lease (one across every process and
instance, as the harvester's) matches new articles and sends webhooks.

Two threads, so that neither waits on the other: the matching thread looks for new
articles every TICK_SECONDS and records their matches (what event streams and feeds read)
and deliveries; the sending thread starts each due delivery on a sender of its own as soon
as one is free, rung by a sender ending, by the matcher queueing deliveries, or by the
tick (retries and pings come due by the clock). From an article entering the archive to its
webhook leaving takes about a tick plus the send, whatever other receivers do.
"""

from __future__ import annotations

import logging
import threading

from newsagg.harvest.leadership import RETRY_SECONDS, Leadership, LeadingThread
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
        self._thread = LeadingThread(
            "push", self.leadership, self._turn, retry_seconds=retry_seconds
        )
        self._sending: threading.Thread | None = None

    def start(self) -> None:
        self._thread.start()  # clears `stopping`: the sending thread starts after it
        if self._sending is None or not self._sending.is_alive():
            self._sending = threading.Thread(target=self._send, name="push-send", daemon=True)
            self._sending.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step and give up the lease, so that another instance
        takes over at its next try; the attempts in flight end within their timeout."""
        self._thread.stop(timeout)
        self.deliverer.wake.set()
        if self._sending is not None:
            self._sending.join(timeout)
            self._sending = None
        self.deliverer.close()

    def step(self) -> None:
        """A round by hand (tests): match what is new, then send what is due and wait for
        those attempts. The caller holds the lead. The running worker does the two on
        threads of their own and never waits on a send (see `start`)."""
        stopping = self._thread.stopping
        self.matcher.run_until_caught_up(lambda: not stopping.is_set() and self.leadership.keep())
        if not stopping.is_set() and self.leadership.keep():
            self.deliverer.run_once()

    def _turn(self) -> float:
        """The matching thread's turn (it holds the lead): match what is new and ring the
        sending thread for the deliveries that made."""
        stopping = self._thread.stopping
        keep = self.leadership.keep
        if self.matcher.run_until_caught_up(lambda: not stopping.is_set() and keep()):
            self.deliverer.wake.set()
        return self._tick

    def _send(self) -> None:
        """The sending thread: while this instance leads, start what is due whenever it is
        rung or a tick passed. Dispatching only claims and hands out: it never waits."""
        stopping, wake = self._thread.stopping, self.deliverer.wake
        while not stopping.is_set():
            wake.wait(self._tick)
            wake.clear()  # before claiming: a ring meanwhile brings it round again
            if stopping.is_set() or not self.leadership.leading:
                continue
            try:
                self.deliverer.dispatch()
            except Exception:  # the store unreachable, or a bug: log it, never give up
                log.exception("push: sending failed")
                stopping.wait(self.leadership.renew_seconds)
