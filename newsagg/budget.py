"""Upstream budgets: every call to an upstream is counted, and none is made beyond its quota.

Each provider has a quota: one or more limits in the `limits` rate notation
(`NEWSAGG_NEWSAPI_QUOTA=50/12 hours;100/day`). A call is made for one of two purposes:
`harvest` (the background harvester) or `demand` (a refresh a client's request asked for,
made for that client's API key). Before every upstream call, `Budgets.take` counts it in a
ledger in the store, or refuses it; a refused call is not made.

The rule. For each limit of a provider, A calls per window W (a moving window, exact to the
microsecond: a call counts for W after it was made, on the store's clock), with s =
`NEWSAGG_ON_DEMAND_SHARE`:

- all calls together never exceed A in any window W;
- the on-demand pool is P = max(1, floor(A * s)) (P = 0 when s = 0: no calls on demand at
  all); calls on demand never exceed P in any window W;
- the harvester may make H = A - P calls in any window W, so the on-demand pool is always
  there for clients. Tiny A: when A = 1 and s < 1 (`1/second`), the single call cannot be
  split, so it is not reserved: H = 1 and P = 1, both may take it, first come first served,
  and the one that finds it taken waits for the window to move (`retry_after`, at most W).
  (With s = 1, H = 0 for every limit: everything is on demand, the harvester makes no call);
- one API key may spend at most its tier's part of the on-demand pool in any window W:
  K = max(1, floor(P * part)) with part 10 % (basic), 25 % (premium), 100 % (unlimited).
  With the default NewsAPI quota and s = 0.2: P = 10 per 12 h and 20 per day, so a basic key
  causes at most 1 NewsAPI call per 12 h and 2 per day, a premium key 2 and 5; 1,000
  distinct searches from one key leave the harvester and every other key untouched. A call
  on demand without a caller (the service's own) counts against P only.

A call is granted only if every limit allows it. The count and the insert are one atomic
step in the store (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped lock per
provider), so processes and instances sharing the database never overspend together, and
the ledger survives a restart. When the store cannot be reached, no call is made: the
budget cannot be checked, so `take` refuses it the same way (`upstream_budget_spent`, with
the store's retry delay) and the feed reports that provider's error like any other.

A counted call stays counted whatever becomes of it (a timeout, an error answer): the
upstream counts it too. So `take` belongs right before each HTTP request, retries included,
after the cache and the circuit breaker had their say.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, get_args

import limits

from newsagg.errors import Unavailable
from newsagg.store.base import BudgetCheck, BudgetVerdict
from newsagg.tiers import Tier
from providers.base import PROVIDER_NAMES, ProviderName, UpstreamError

if TYPE_CHECKING:
    from newsagg.settings import Settings
    from newsagg.store import Store

Purpose = Literal["harvest", "demand"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
# The part of the on-demand pool one API key may spend, by its tier.
TIER_PARTS: Mapping[Tier, float] = {"basic": 0.10, "premium": 0.25, "unlimited": 1.0}
SPENT = "upstream_budget_spent"


@dataclass(frozen=True, slots=True)
class Caller:
    """The API key a call on demand is made for."""

    key_id: int
    tier: Tier


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit of a provider's quota, with its parts under the rule above."""

    text: str  # in the notation it was given in, normalized: "100/day", "50/12 hours"
    amount: int  # A
    window_seconds: int  # W
    pool: int  # P: calls on demand
    harvest: int  # H: calls of the harvester
    per_key: Mapping[Tier, int]  # K: calls on demand of one key, by tier


@dataclass(frozen=True, slots=True)
class LimitStanding:
    text: str
    amount: int
    window_seconds: int
    used: int  # calls of any purpose in the window that ends now
    remaining: int


@dataclass(frozen=True, slots=True)
class BudgetStanding:
    limits: tuple[LimitStanding, ...]
    next_call_at: datetime | None  # aware UTC; None when a call is possible now


def parse_quota(text: str, on_demand_share: float) -> tuple[Limit, ...]:
    """The limits of a quota in the `limits` notation, with their parts; ValueError if
    the text is not one or the share is outside 0-1."""
    if not 0 <= on_demand_share <= 1:
        raise ValueError(f"the on-demand share must be from 0 to 1, not {on_demand_share!r}")
    items = limits.parse_many(text)
    if not items:
        raise ValueError(f"no limit in {text!r}")
    return tuple(_limit(item, on_demand_share) for item in items)


def _limit(item: limits.RateLimitItem, share: float) -> Limit:
    amount = item.amount
    if amount < 1:
        raise ValueError(f"a limit must allow at least 1 call: {item}")
    pool = 0 if share == 0 else max(1, math.floor(amount * share))
    harvest = 1 if amount == 1 and share < 1 else amount - pool
    unit = item.GRANULARITY.name
    text = f"{amount}/{unit}" if item.multiples == 1 else f"{amount}/{item.multiples} {unit}s"
    return Limit(
        text=text,
        amount=amount,
        window_seconds=item.get_expiry(),
        pool=pool,
        harvest=harvest,
        per_key={
            tier: 0 if pool == 0 else max(1, math.floor(pool * part))
            for tier, part in TIER_PARTS.items()
        },
    )


class Budgets:
    """The call budgets of the upstreams, kept in `store` (see the module's rule)."""

    def __init__(
        self,
        store: Store,
        quotas: Mapping[ProviderName, str],
        on_demand_share: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock`: seconds since the epoch; None (in service) means the store's own clock,
        one for every process and instance (the server's on PostgreSQL)."""
        self._store = store
        self._clock = clock
        self._limits = {
            provider: parse_quota(text, on_demand_share) for provider, text in quotas.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings, store: Store) -> Budgets:
        quotas: dict[ProviderName, str] = {
            name: getattr(settings, f"{name}_quota") for name in PROVIDER_NAMES
        }
        return cls(store, quotas, settings.on_demand_share)

    def limits(self, provider: ProviderName) -> tuple[Limit, ...]:
        try:
            return self._limits[provider]
        except KeyError:
            raise ValueError(f"no quota for {provider!r}") from None

    def take(self, provider: ProviderName, purpose: Purpose, caller: Caller | None = None) -> None:
        """Count one call of `provider`, or raise UpstreamError(`upstream_budget_spent`)
        and make none: its `retry_after` is the seconds until a call of this purpose (and
        caller) is allowed again if nobody else takes one meanwhile (None: never, a part
        of 0), its message names the provider and the limit that is spent."""
        checks = self._checks(provider, purpose, caller)
        key_id = None if caller is None else caller.key_id
        try:
            verdict = self._store.budget_take(provider, purpose, key_id, checks, self._now_us())
        except Unavailable as exc:
            raise UpstreamError(
                SPENT,
                f"{provider}: the call budget cannot be checked now (the database is"
                " unreachable), so no call is made",
                retry_after=exc.retry_after_seconds,
            ) from None
        if not verdict.granted:
            raise self._refusal(provider, purpose, checks, verdict)

    def take_within(
        self,
        provider: ProviderName,
        purpose: Purpose,
        caller: Caller | None = None,
        *,
        seconds: float,
        wait: Callable[[float], object] = time.sleep,
    ) -> None:
        """`take`, waiting for the budget when it allows the call within `seconds` (a
        `1/second` limit): a short wait serves better than a refusal. `wait` sleeps (an
        Event's wait, for a thread that must stop promptly)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self.take(provider, purpose, caller)
            except UpstreamError as exc:
                pause = exc.retry_after
                if pause is None or time.monotonic() + pause >= deadline:
                    raise
                wait(pause)

    def standing(self, provider: ProviderName) -> BudgetStanding:
        """How much of each limit is used now, and when the limits allow the next call of
        any purpose (None: now). Parts are not shown: `take` tells a caller about its own."""
        provider_limits = self.limits(provider)
        checks = [_seconds_check(limit, max_total=limit.amount) for limit in provider_limits]
        verdict = self._store.budget_peek(provider, "harvest", None, checks, self._now_us())
        next_call_at = None
        if not verdict.granted:  # every cap here is at least 1: the wait is finite
            next_call_at = datetime.fromtimestamp(
                (verdict.now_us + (verdict.wait_us or 0)) / 1e6, UTC
            )
        return BudgetStanding(
            tuple(
                LimitStanding(
                    limit.text,
                    limit.amount,
                    limit.window_seconds,
                    count.total,
                    max(0, limit.amount - count.total),
                )
                for limit, count in zip(provider_limits, verdict.counts, strict=True)
            ),
            next_call_at,
        )

    # -- the rule, as store checks -----------------------------------------------------

    def _checks(
        self, provider: ProviderName, purpose: Purpose, caller: Caller | None
    ) -> list[BudgetCheck]:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        if purpose == "harvest" and caller is not None:
            raise ValueError("the harvester calls for no API key")
        checks = []
        for limit in self.limits(provider):
            if purpose == "harvest":
                checks.append(_seconds_check(limit, limit.amount, limit.harvest))
            else:
                per_key = None if caller is None else limit.per_key[caller.tier]
                checks.append(_seconds_check(limit, limit.amount, limit.pool, per_key))
        return checks

    def _now_us(self) -> int | None:
        return None if self._clock is None else round(self._clock() * 1e6)

    def _refusal(
        self,
        provider: ProviderName,
        purpose: Purpose,
        checks: list[BudgetCheck],
        verdict: BudgetVerdict,
    ) -> UpstreamError:
        # Name the limit that keeps the call waiting longest (one that never allows it first).
        failing = [
            (limit, check, count)
            for limit, check, count in zip(
                self.limits(provider), checks, verdict.counts, strict=True
            )
            if count.wait_us != 0
        ]
        limit, check, count = max(
            failing, key=lambda item: math.inf if item[2].wait_us is None else item[2].wait_us
        )
        if check.max_key is not None and count.key >= check.max_key:
            what = f"this API key's part of the {limit.text} budget ({_calls(check.max_key)})"
        elif check.max_purpose is not None and count.purpose >= check.max_purpose:
            part = "on-demand" if purpose == "demand" else "harvester's"
            what = f"the {part} part of the {limit.text} budget ({_calls(check.max_purpose)})"
        else:
            what = f"the {limit.text} budget"
        wait_us = verdict.wait_us
        if wait_us is None:
            return UpstreamError(SPENT, f"{provider}: {what} allows no such call", None)
        retry_after = wait_us / 1e6
        return UpstreamError(
            SPENT,
            f"{provider}: {what} is spent; next call possible in {_duration(retry_after)}",
            retry_after,
        )


def _seconds_check(
    limit: Limit,
    max_total: int | None = None,
    max_purpose: int | None = None,
    max_key: int | None = None,
) -> BudgetCheck:
    return BudgetCheck(limit.window_seconds * 1_000_000, max_total, max_purpose, max_key)


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _duration(seconds: float) -> str:
    """`3 h 12 min`, `4 min 5 s`, `2 s`: rounded up, so never `0 s`."""
    whole = max(1, math.ceil(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
