"""When each provider is harvested next: intervals that adapt, jitter, backoff.

Pure functions of the last outcome: no clock, no store, so a test drives them directly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from newsagg.budget import Limit

ADAPT_UP = 1.5  # nothing new: wait this much longer next time
ADAPT_DOWN = 0.5  # a page came back full: stories are piling up, come back sooner
NEWSAPI_FLOOR = 10.0  # seconds between two top-headlines calls at the most
JITTER = 0.2  # each wait is stretched by up to this fraction, so instances never align


@dataclass(frozen=True, slots=True)
class Pace:
    """A provider's interval bounds, in seconds."""

    minimum: float
    start: float
    maximum: float
    failure_cap: float  # the longest wait after failures

    def clamp(self, seconds: float) -> float:
        return min(self.maximum, max(self.minimum, seconds))


def budget_pace(limits: Sequence[Limit]) -> float:
    """Seconds per call that keep the harvester within its part of every limit forever
    (`50/12 hours;100/day` with a 20 % on-demand share: 40 per 12 h, one call every 18
    min); infinite when a limit leaves the harvester nothing."""
    return max(
        (math.inf if limit.harvest == 0 else limit.window_seconds / limit.harvest)
        for limit in limits
    )


def after_success(pace: Pace, interval: float, added: int, full: bool) -> float:
    """The next interval: shorter after a full page, longer after nothing new."""
    if full:
        return pace.clamp(interval * ADAPT_DOWN)
    if added == 0:
        return pace.clamp(interval * ADAPT_UP)
    return pace.clamp(interval)


def after_failure(pace: Pace, failures: int) -> float:
    """The wait after `failures` (>= 1) failed runs in a row: doubling from the minimum,
    capped; never infinite, so the harvester never gives up."""
    return min(pace.failure_cap, pace.minimum * 2 ** min(failures - 1, 32))


def after_refusal(pace: Pace, retry_after: float | None) -> float:
    """The wait after the budget refused a call: until it allows one (None: it never
    will with these settings; look again after the failure cap)."""
    return pace.failure_cap if retry_after is None else max(retry_after, 0.0)


def jittered(seconds: float, rng: random.Random) -> float:
    """`seconds` stretched by up to JITTER: never shorter, so never faster than a pace."""
    return seconds * (1 + rng.uniform(0, JITTER))


def paces(budget_paces: dict[str, float], demo: bool = False) -> dict[str, Pace]:
    """Each provider's pace, from the seconds per call its harvest budget allows
    (`budget_pace`). HN and the Guardian take everything new each run, so their interval
    adapts between bounds (never faster than their budget); NewsAPI makes one call a turn,
    exactly at its budget's pace, but not oftener than every NEWSAPI_FLOOR seconds (a budget
    wide open would otherwise have it call in a loop). Demo mode (the simulator) runs in
    seconds."""
    if demo:
        quick = Pace(minimum=5.0, start=10.0, maximum=30.0, failure_cap=60.0)
        return {
            "hackernews": quick,
            "guardian": quick,
            "newsapi": Pace(30.0, 30.0, 30.0, 300.0),
        }
    hn, guardian, newsapi = (budget_paces[name] for name in ("hackernews", "guardian", "newsapi"))
    headlines = max(NEWSAPI_FLOOR, newsapi)
    return {
        "hackernews": Pace(max(60.0, hn), max(300.0, hn), max(900.0, hn), max(3600.0, hn)),
        "guardian": Pace(
            max(120.0, guardian), max(600.0, guardian), max(1800.0, guardian), max(3600.0, guardian)
        ),
        "newsapi": Pace(headlines, headlines, headlines, max(3600.0, newsapi)),
    }
