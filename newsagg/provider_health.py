"""Each provider's recent record, and the circuit breaker built on it.

The breaker keeps a dead or throttling provider from costing anything per request:
- after `failure_threshold` consecutive failures that say the provider is unwell
  (UNHEALTHY) it opens for `open_seconds`; then one request at a time is let through as a
  probe (half-open) until one succeeds;
- an upstream rate limit (429 or the provider's rate-limit code) puts the provider in a
  cool-down for as long as its Retry-After asks (or `default_cooldown_seconds`);
- an upstream's refusal of one query's parameters (`upstream_rejected_query`) is that
  query's problem: it neither counts nor becomes the provider's `last_error`, so no client
  can open the breaker for everyone by asking something the upstream refuses.
A refused call fails fast with an UpstreamError, so stale-if-error still applies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from providers.base import UpstreamError

# The failures that say the provider itself is unwell, whoever asked: they count towards
# opening the breaker. A bad upstream key (`upstream_auth_failed`) is among them: it fails
# every request of every client until an operator acts, like a dead upstream, so calling
# on every request would only add an upstream round trip to each; the half-open probe
# notices when the upstream takes the key again. A rate limit has its own cool-down; a
# rejected query and a refusal by the breaker itself (`circuit_open`) say nothing new.
UNHEALTHY = frozenset(
    {
        "upstream_timeout",
        "upstream_unreachable",
        "upstream_error",
        "upstream_bad_response",
        "upstream_auth_failed",
    }
)


@dataclass(frozen=True, slots=True)
class LastError:
    code: str
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Health:
    last_success_at: datetime | None = None
    last_error: LastError | None = None
    consecutive_failures: int = 0
    blocked_until: float = 0.0  # monotonic; open or cooling down until then
    cooling_down: bool = False  # the block is an upstream rate limit, not failures
    probing: bool = False  # half-open: a probe is in flight


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: str  # closed, open, half_open, cooling_down
    retry_in_seconds: int


class ProviderHealth:
    def __init__(
        self,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        default_cooldown_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.default_cooldown_seconds = default_cooldown_seconds
        self._clock = clock
        self._by_name: dict[str, Health] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Health:
        with self._lock:
            return self._by_name.get(name, Health())

    def breaker(self, name: str) -> BreakerView:
        health = self.get(name)
        wait = health.blocked_until - self._clock()
        if wait > 0:
            return BreakerView("cooling_down" if health.cooling_down else "open", int(wait + 0.999))
        if health.consecutive_failures >= self.failure_threshold:
            return BreakerView("half_open", 0)
        return BreakerView("closed", 0)

    def admit(self, name: str) -> None:
        """Raise UpstreamError if the breaker refuses a call to `name` now."""
        with self._lock:
            health = self._by_name.get(name, Health())
            wait = health.blocked_until - self._clock()
            if wait > 0:
                if health.cooling_down:
                    raise UpstreamError(
                        "upstream_rate_limited",
                        f"{name} asked us to slow down; next try in {int(wait + 0.999)} seconds",
                        retry_after=wait,
                    )
                raise UpstreamError(
                    "circuit_open",
                    f"{name} failed {health.consecutive_failures} times in a row; "
                    f"next try in {int(wait + 0.999)} seconds",
                    retry_after=wait,
                )
            if health.consecutive_failures >= self.failure_threshold:
                if health.probing:
                    raise UpstreamError(
                        "circuit_open", f"{name} is being probed after repeated failures"
                    )
                self._by_name[name] = replace(health, probing=True)

    def succeeded(self, name: str) -> None:
        with self._lock:
            before = self._by_name.get(name, Health())
            self._by_name[name] = Health(datetime.now(UTC), before.last_error)

    def failed(self, name: str, error: UpstreamError) -> None:
        """Record a failed call to `name`; `error.code` says what it counts for."""
        with self._lock:
            before = self._by_name.get(name, Health())
            now = self._clock()
            if error.code == "upstream_rate_limited":
                failures = before.consecutive_failures  # throttled is not unwell
                blocked_until = now + (error.retry_after or self.default_cooldown_seconds)
                cooling_down = True
            elif error.code in UNHEALTHY:
                failures = before.consecutive_failures + 1
                blocked_until, cooling_down = before.blocked_until, before.cooling_down
                if failures >= self.failure_threshold:
                    blocked_until, cooling_down = now + self.open_seconds, False
            else:
                # The provider answered; only the probe slot, if this call held it, is freed.
                self._by_name[name] = replace(before, probing=False)
                return
            self._by_name[name] = Health(
                before.last_success_at,
                LastError(error.code, error.message, datetime.now(UTC)),
                failures,
                blocked_until,
                cooling_down,
                probing=False,
            )
