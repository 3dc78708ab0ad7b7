"""The harvester: keeps the archive fresh without any client asking.

One round visits each provider whose turn has come (its schedule is persisted in the
store, so it survives restarts and moves with the lead between instances):
- HN and the Guardian: everything published since the high-water mark (less an overlap,
  for stories indexed late), newest first, page after page until the last; the first run
  looks back LOOKBACK_SECONDS. The mark moves only when a sweep completes, so a sweep cut
  short (a failure, the budget, a lost lead) is taken again from the same mark.
- NewsAPI: the US top headlines of one category per turn, the seven in turn, at the pace
  its harvest budget allows.
Every upstream request is paid from the provider's harvest budget first (newsagg.budget).
Once a round the leader prunes the archive past NEWSAGG_ARCHIVE_DAYS.

Inside `newsagg serve` the harvester runs on a thread of its own (`start`/`stop`) and only
while it holds the lease (newsagg.harvest.leadership); `newsagg harvest --once` runs one
round (`round`) under the same lease.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from newsagg.archive_writer import ArchiveWriter
from newsagg.budget import SPENT, Budgets
from newsagg.harvest.leadership import RETRY_SECONDS, Leadership, LeadingThread
from newsagg.harvest.schedule import (
    Pace,
    after_failure,
    after_refusal,
    after_success,
    jittered,
)
from newsagg.harvest.view import HarvestStanding, HarvestView
from newsagg.metrics import Metrics
from newsagg.store import Store
from newsagg.store.base import HarvestState
from providers.base import (
    CATEGORIES,
    Harvestable,
    HarvestCursor,
    HarvestPage,
    ProviderName,
    UpstreamError,
)

__all__ = ["HarvestStanding", "HarvestView", "Harvester", "RoundReport"]

log = logging.getLogger(__name__)

LOOKBACK_SECONDS = 24 * 3600  # a first run fills a fresh archive with a day, no more
# Each sweep starts this much before the mark: stories indexed a while after they were
# published are not missed (those seen again keep their ids).
OVERLAP_SECONDS = 600
MAX_PAGES = 50  # a sweep ends after this many pages, whatever is left
# A budget refusal this short (the Guardian's 1/second) is waited out within the sweep.
SHORT_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one provider's run did."""

    provider: ProviderName
    outcome: str  # "ok", an UpstreamError code, or "partial" (more is left for next time)
    added: int
    calls: int
    message: str | None
    next_run_at: datetime

    def summary(self) -> str:
        """One line, as `newsagg harvest --once` prints it (no key, no URL)."""
        line = f"{self.provider}: {self.outcome}, {self.added} added, {self.calls} calls"
        if self.message:
            line += f" ({self.message})"
        return line + f"; next run {self.next_run_at.isoformat(timespec='seconds')}"


class _Stopped(Exception):
    """The harvester is stopping, or lost the lead, in the middle of a sweep."""


@dataclass(slots=True)
class _Sweep:
    """One provider's run as it goes."""

    added: int = 0
    calls: int = 0
    newest_us: int | None = None
    full: bool = False


class Harvester:
    def __init__(
        self,
        providers: Sequence[Harvestable],
        store: Store,
        budgets: Budgets,
        archive: ArchiveWriter,
        metrics: Metrics,
        view: HarvestView,
        paces: Mapping[str, Pace],
        *,
        timeout: float,
        archive_days: int,
        leadership: Leadership | None = None,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.view = view
        self.leadership = leadership or Leadership(store)
        self._providers = list(providers)
        self._store = store
        self._budgets = budgets
        self._archive = archive
        self._metrics = metrics
        self._paces = paces
        self._timeout = timeout
        self._archive_days = archive_days
        self._clock = clock
        self._rng = rng or random.Random()
        self._thread = LeadingThread(
            "harvester", self.leadership, self._turn, retry_seconds=retry_seconds, rng=self._rng
        )
        self._stop = self._thread.stopping
        self._next_due_us: float | None = None

    # -- the background thread -------------------------------------------------------

    def start(self) -> None:
        """Run rounds on a thread of its own while this process holds the lead; the
        first at once."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop between two pages (an upstream call in flight ends within its timeout),
        and give up the lead so that another harvester takes it at its next try."""
        self._thread.stop(timeout)

    def _turn(self) -> float:
        self.round()
        return min(self.leadership.renew_seconds, self._until_due())

    def _until_due(self) -> float:
        if self._next_due_us is None:
            return math.inf
        return max(0.0, self._next_due_us / 1e6 - self._clock())

    # -- rounds ----------------------------------------------------------------------

    def standing(self, name: ProviderName) -> HarvestStanding:
        return self.view.standing(name)

    def round(self, force: bool = False) -> list[RoundReport]:
        """Harvest every provider whose turn has come (`force`: every one), then prune
        the archive. The caller holds the lead. Raises Unavailable when the store is."""
        states = self._store.harvest_states()
        reports = []
        next_due: list[float] = []
        for provider in self._providers:
            state = states.get(provider.name) or HarvestState(provider.name)
            pace = self._paces[provider.name]
            if not provider.enabled or math.isinf(pace.minimum):
                continue  # no key, or a budget that leaves the harvester nothing
            due = state.next_run_us is None or state.next_run_us <= self._clock() * 1e6
            if force or due:
                if self._stop.is_set() or not self.leadership.keep():
                    break
                state, report = self._run(provider, state, pace)
                self._store.harvest_save(state)
                self.view.update(state)
                reports.append(report)
            next_due.append(state.next_run_us or 0)
        self._next_due_us = min(next_due, default=None)
        self._prune()
        return reports

    def _prune(self) -> None:
        if self._archive_days:
            before = datetime.fromtimestamp(self._clock(), UTC) - timedelta(days=self._archive_days)
            pruned = self._store.prune_articles(before)
            if pruned:
                log.info("archive pruned: %d articles published before %s", pruned, before)

    def _run(
        self, provider: Harvestable, state: HarvestState, pace: Pace
    ) -> tuple[HarvestState, RoundReport]:
        """One provider's run, and its state after it."""
        now_us = round(self._clock() * 1e6)
        sweep = _Sweep()
        state = replace(state, last_run_us=now_us)
        try:
            if provider.name == "newsapi":
                state = self._headlines(provider, state, sweep)
            else:
                state = self._since(provider, state, sweep, now_us)
            interval = (state.interval_ms or pace.start * 1000) / 1000
            if provider.name == "newsapi":
                interval = pace.minimum
            else:
                interval = after_success(pace, interval, sweep.added, sweep.full)
            outcome, message, wait = "ok", None, interval
            state = replace(
                state,
                last_success_us=now_us,
                last_error_code=None,
                last_error_message=None,
                interval_ms=round(interval * 1000),
                failures=0,
            )
        except _Stopped:
            outcome, message, wait = "partial", "stopped before the last page", 0.0
        except UpstreamError as exc:
            outcome, message = exc.code, exc.message
            if exc.code == SPENT:  # not the upstream's failure: wait for the budget
                wait = after_refusal(pace, exc.retry_after)
            else:
                state = replace(state, failures=state.failures + 1)
                wait = after_failure(pace, state.failures)
            state = replace(state, last_error_code=exc.code, last_error_message=exc.message)
        except Exception:  # a bug of ours: logged, retried like a failure
            log.exception("harvest of %s failed unexpectedly", provider.name)
            outcome, message = "harvest_failed", "an unexpected error; see the log"
            state = replace(
                state,
                failures=state.failures + 1,
                last_error_code=outcome,
                last_error_message=message,
            )
            wait = after_failure(pace, state.failures)
        next_us = now_us + round(jittered(wait, self._rng) * 1e6)
        state = replace(state, next_run_us=next_us, added_last=sweep.added)
        self._count(provider.name, outcome, sweep)
        report = RoundReport(
            provider.name,
            outcome,
            sweep.added,
            sweep.calls,
            message,
            datetime.fromtimestamp(next_us / 1e6, UTC),
        )
        # One line a run; UpstreamError messages never hold a key or a URL.
        log.info("harvest %s", report.summary())
        return state, report

    def _since(
        self, provider: Harvestable, state: HarvestState, sweep: _Sweep, now_us: int
    ) -> HarvestState:
        """Everything published since the mark (HN, the Guardian); the mark moves only
        when the sweep reaches its last page."""
        if state.high_water_us is None:
            since_us = now_us - LOOKBACK_SECONDS * 1_000_000
        else:
            since_us = state.high_water_us - OVERLAP_SECONDS * 1_000_000
        since = datetime.fromtimestamp(since_us / 1e6, UTC)
        cursor: HarvestCursor | None = HarvestCursor()
        pages = 0
        while cursor is not None:
            if pages == MAX_PAGES:
                # A backlog this long would never be taken whole: keep the newest part and
                # move the mark on, or every run would start this same sweep again.
                log.warning("harvest %s: stopped after %d pages", provider.name, pages)
                break
            page = self._page(provider, since, cursor, None, sweep)
            pages += 1
            cursor = page.next
            sweep.full = sweep.full or cursor is not None
        high_water = max(since_us, sweep.newest_us or since_us, state.high_water_us or since_us)
        return replace(
            state,
            high_water_us=high_water,
            covered_from_us=state.covered_from_us or since_us,
        )

    def _headlines(self, provider: Harvestable, state: HarvestState, sweep: _Sweep) -> HarvestState:
        """NewsAPI: the top headlines of the category whose turn it is."""
        category = CATEGORIES[state.category_cursor % len(CATEGORIES)]
        self._page(provider, None, HarvestCursor(), category, sweep)
        harvested_at = round(self._clock() * 1e6)
        return replace(
            state,
            category_cursor=(state.category_cursor + 1) % len(CATEGORIES),
            categories={**state.categories, category: harvested_at},
        )

    def _page(
        self,
        provider: Harvestable,
        since: datetime | None,
        cursor: HarvestCursor,
        category: str | None,
        sweep: _Sweep,
    ) -> HarvestPage:
        """One page, paid from the harvest budget (short refusals waited out), saved to
        the archive at once: what a sweep cut short got is kept."""
        name = provider.name

        def pay() -> None:
            self._budgets.take_within(
                name, "harvest", seconds=SHORT_WAIT_SECONDS, wait=self._stop.wait
            )
            sweep.calls += 1

        if self._stop.is_set() or not self.leadership.keep():
            raise _Stopped
        page = provider.harvest_page(since, cursor, self._timeout, pay, category)
        if page.articles:
            before = self._store.newest_article_id()
            items = self._archive.save(page.articles)
            sweep.added += sum(1 for item in items if item.id > before)
            newest = max(round(a.published_at.timestamp() * 1e6) for a in page.articles)
            sweep.newest_us = max(sweep.newest_us or newest, newest)
        return page

    def _count(self, name: ProviderName, outcome: str, sweep: _Sweep) -> None:
        self._metrics.harvest_runs.labels(name, outcome).inc()
        self._metrics.harvest_added.labels(name).inc(sweep.added)
        self._metrics.harvest_calls.labels(name).inc(sweep.calls)
