"""The service keeps its own database fast: exactly one process across every worker and
instance takes the database's upkeep in short steps, under the "upkeep" lease.

What runs, first on every engine: body texts past their time (the Guardian's, after
NEWSAGG_GUARDIAN_BODY_HOURS) leave the full-text index and the database, EXPIRE_ROWS
articles a step. Then articles without a story (saved by an older release during a
rolling upgrade) are placed in one, as many a step. Then stories grown since the last look
are merged where two tell one event (MERGE_STORIES a step). Then the engine's own
(`Store.upkeep_step`; SQLite's in newsagg.store.sqlite):
- SQLite, in this order of priority:
  1. `ANALYZE` of the archive's tables, bounded by `PRAGMA analysis_limit` (1000 entries
     an index), once the archive holds 1,000 articles, then whenever its newest article id
     has grown by a tenth since the last, or a day has passed and anything was added; the
     same transaction makes every connection of every process load the new statistics.
  2. FTS5 merges, `'merge'` of a few hundred pages a step, while the archive has articles
     the merges have not seen and FTS5 finds segments to merge (any level holding 2).
  3. A passive WAL checkpoint (it waits for no one, no one waits for it); a WAL grown past
     8 MiB is then truncated, waiting at most 20 ms for readers to move on.
- PostgreSQL: nothing; autovacuum does it.

When: a turn every IDLE_SECONDS (10 s), each taking the step that is due, if any; while
steps find more to do, the next follows after a pause of 4 times the step (at least
PAUSE_SECONDS), so the upkeep holds the write lock at most a fifth of the time. Each step
is one short write transaction of about STEP_SECONDS (5 ms): readers never wait for it
(WAL), writers (the harvester, on-demand saves, rate-limit windows in the file) wait at most
that long plus SQLite's busy-wait granularity. The first turn comes FIRST_WAIT_SECONDS after
start: nothing is urgent then, and a process that lives a few seconds commits nothing.

A benchmark or a script runs the same steps with `Upkeep(store).catch_up()`.
"""

from __future__ import annotations

import logging
import threading
import time

from newsagg.harvest.leadership import RETRY_SECONDS, Leadership, LeadingThread
from newsagg.store import Store, UpkeepStep

log = logging.getLogger(__name__)

UPKEEP_LEASE = "upkeep"
# What a step is sized to hold the write lock for. Saving 100 articles at a time as fast
# as possible beside it (100,000 articles, 2 shared cores, noisy): save p99 24 ms without
# upkeep; with steps of 20 ms, 44 ms (writers sleep in SQLite's busy wait past its end);
# 10 ms, 34 ms; 5 ms, 27 ms.
STEP_SECONDS = 0.005
IDLE_SECONDS = 10.0  # between turns when nothing more is due
PAUSE_SECONDS = 0.1  # at least, between steps while more is due
PAUSE_FACTOR = 4.0  # ... and 4 times the step: the lock held at most a fifth of the time
FIRST_WAIT_SECONDS = 10.0
SLOW_STEP_SECONDS = 0.2  # a step this long is logged as a warning
# Bodies leaving the index a step: on SQLite each is removed from FTS5 and indexed again
# without its body (~0.1 ms an article of 1,000 words).
EXPIRE_ROWS = 50
# Stories grown since the last step compared with the stories sharing their words, a step
# (newsagg.store.story_upkeep.merge_stories: a story reads its bounded candidates).
MERGE_STORIES = 5


class Upkeep:
    def __init__(
        self,
        store: Store,
        *,
        leadership: Leadership | None = None,
        budget_seconds: float = STEP_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
        first_wait_seconds: float = FIRST_WAIT_SECONDS,
        retry_seconds: tuple[float, float] = RETRY_SECONDS,
    ) -> None:
        self._store = store
        self.leadership = leadership or Leadership(store, UPKEEP_LEASE)
        self.budget_seconds = budget_seconds
        self._idle_seconds = idle_seconds
        self._first_wait_seconds = first_wait_seconds
        self._thread = LeadingThread(
            "upkeep", self.leadership, self.turn, retry_seconds=retry_seconds
        )
        self._starter: threading.Timer | None = None

    def start(self) -> None:
        """Start the thread (its first turn after `first_wait_seconds`); every process
        starts one, and the lease lets one of them work."""
        if self._starter is not None:
            return
        self._starter = threading.Timer(self._first_wait_seconds, self._thread.start)
        self._starter.daemon = True
        self._starter.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step and give up the lease."""
        if self._starter is not None:
            self._starter.cancel()
            self._starter.join(timeout)  # a start under way has then started the thread
            self._starter = None
        self._thread.stop(timeout)

    def step(self) -> UpkeepStep:
        """The step that is due now, whoever holds the lease (the thread takes it only while
        leading): see the module's docstring."""
        started = time.perf_counter()
        store = self._store
        step = None
        for work, done, full in (
            ("expire", lambda: store.expire_bodies(EXPIRE_ROWS), EXPIRE_ROWS),
            ("place strays", lambda: store.place_strays(EXPIRE_ROWS), EXPIRE_ROWS),
            (
                "merge stories",
                lambda: store.merge_stories(MERGE_STORIES, self.budget_seconds)[0],
                MERGE_STORIES,
            ),
        ):
            count = done()
            if count:
                step = UpkeepStep(work, time.perf_counter() - started, more=count == full)
                break
        # A merge step that found less than a full step's work leaves the turn to the
        # engine's: stories grow with every save, and must not starve the rest.
        if step is None or (step.work == "merge stories" and not step.more):
            step = store.upkeep_step(self.budget_seconds)
        if step.seconds >= SLOW_STEP_SECONDS:
            log.warning("upkeep: %s took %.0f ms", step.work, step.seconds * 1000)
        elif step.work == "analyze":
            log.info("upkeep: planner statistics refreshed in %.1f ms", step.seconds * 1000)
        return step

    def turn(self) -> float:
        """One turn of the thread: a step; the seconds until the next."""
        step = self.step()
        if not step.more:
            return self._idle_seconds
        return max(PAUSE_SECONDS, PAUSE_FACTOR * step.seconds)

    def catch_up(self, max_seconds: float = float("inf")) -> list[UpkeepStep]:
        """Steps, back to back, until nothing more is due (or `max_seconds` have passed):
        what the thread does over its turns, without the pauses it leaves for writers."""
        steps: list[UpkeepStep] = []
        deadline = time.monotonic() + max_seconds
        while True:
            steps.append(self.step())
            if not steps[-1].more or time.monotonic() >= deadline:
                return steps
