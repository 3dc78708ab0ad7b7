"""The push worker: one thread per process; the one holding the "push" lease (one across
every process and instance, as the harvester's) matches new articles and sends webhooks.

It looks every TICK_SECONDS: from an article entering the archive to its webhook leaving
takes about a tick plus the send.
"""

from __future__ import annotations

from newsagg.harvest.leadership import RETRY_SECONDS, Leadership, LeadingThread
from newsagg.push.delivery import Deliverer
from newsagg.push.matcher import Matcher
from newsagg.store import Store

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

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step (a send in flight ends within its timeout) and give
        up the lease, so that another instance takes over at its next try."""
        self._thread.stop(timeout)
        self.deliverer.close()

    def step(self) -> None:
        """Match what is new, then send what is due. The caller holds the lead."""
        stopping = self._thread.stopping
        self.matcher.run_until_caught_up(lambda: not stopping.is_set() and self.leadership.keep())
        if not stopping.is_set() and self.leadership.keep():
            self.deliverer.run_once()

    def _turn(self) -> float:
        self.step()
        return self._tick
