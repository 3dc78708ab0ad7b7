"""What the harvester has done, as requests see it: coverage and each provider's standing.

Every request asks `covered`, so it answers from memory; the states are read again from
the store at most every REFRESH_SECONDS, since the harvester may run in another process or
instance (the one that runs it updates its own view at once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from newsagg.errors import Unavailable
from newsagg.harvest.schedule import Pace
from newsagg.store import Store
from newsagg.store.base import HarvestState
from providers.base import CATEGORIES, ProviderName, Query

log = logging.getLogger(__name__)

REFRESH_SECONDS = 3.0
# A harvest counts as recent for its interval plus this part of it (at least MIN_SLACK
# seconds): a round that is a little late, or runs a while, leaves its queries covered.
SLACK = 0.5
MIN_SLACK_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class HarvestStanding:
    """A provider's harvest as GET /sources shows it."""

    last_harvested_at: datetime | None  # the last successful run
    next_harvest_at: datetime | None  # None: due now (or never harvested)
    last_error_code: str | None  # of the last run; None when it succeeded
    last_error_message: str | None
    added_last_round: int


def _moment(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, UTC)


class HarvestView:
    def __init__(
        self,
        store: Store,
        paces: Mapping[str, Pace],
        clock: Callable[[], float] = time.time,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._store = store
        self._paces = paces
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._states: dict[str, HarvestState] = {}
        self._read_at = -float("inf")  # monotonic
        self._lock = threading.Lock()

    def state(self, name: str) -> HarvestState | None:
        self._refresh()
        return self._states.get(name)

    def update(self, state: HarvestState) -> None:
        """A state this process just stored: seen at once, without reading it back."""
        with self._lock:
            self._states = {**self._states, state.provider: state}

    def standing(self, name: ProviderName) -> HarvestStanding:
        state = self.state(name) or HarvestState(name)
        return HarvestStanding(
            _moment(state.last_success_us),
            _moment(state.next_run_us),
            state.last_error_code,
            state.last_error_message,
            state.added_last,
        )

    def covered(self, name: ProviderName, query: Query) -> bool:
        """Whether the harvest keeps `name`'s part of `query` fresh, so that no refresh on
        demand is needed. HN and the Guardian: the harvest takes everything they publish,
        so any query is covered while the last success is within the current interval
        plus slack and the query asks nothing older than the harvest has covered. NewsAPI:
        only top headlines are harvested, so only queries without q, whose category (or,
        for none, each of the seven) was harvested within one cycle of all categories."""
        state, pace = self.state(name), self._paces.get(name)
        if state is None or pace is None or state.last_success_us is None:
            return False
        now_us = self._clock() * 1e6
        if name == "newsapi":
            if query.q:
                return False
            cycle = len(CATEGORIES) * pace.maximum
            wanted = CATEGORIES if query.category is None else (query.category,)
            return all(
                now_us - state.categories.get(category, -(2**62)) <= _with_slack(cycle) * 1e6
                for category in wanted
            )
        interval = (state.interval_ms or pace.start * 1000) / 1000
        if now_us - state.last_success_us > _with_slack(interval) * 1e6:
            return False
        start = query.published_from
        return start is None or (
            state.covered_from_us is not None and start.timestamp() * 1e6 >= state.covered_from_us
        )

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self._refresh_seconds:
            return
        with self._lock:
            if now - self._read_at < self._refresh_seconds:
                return  # another thread just read them
            first = self._read_at == -float("inf")
            self._read_at = now
        if self._store.waits_on_network and not first:
            # Requests ask on the event loop: they go on with what is known meanwhile.
            threading.Thread(target=self._read, name="harvest-view", daemon=True).start()
        else:
            self._read()

    def _read(self) -> None:
        try:
            states = self._store.harvest_states()
        except Unavailable:
            log.info("harvest states not refreshed: the database is unreachable")
            return
        with self._lock:
            self._states = states


def _with_slack(seconds: float) -> float:
    return seconds + max(MIN_SLACK_SECONDS, seconds * SLACK)
