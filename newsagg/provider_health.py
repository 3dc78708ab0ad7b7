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

With Redis (`shared`), the record lives there, so a provider found dead through one
instance is refused by all: each change is one read-modify-write under WATCH, times are
wall-clock epoch seconds (the `clock` given), and the half-open probe slot expires, so an
instance that dies mid-probe does not hold it. While Redis does not answer, the record is
kept in-process as without Redis. Either way the same transitions decide what counts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import redis

from newsagg.shared import PREFIX, RedisDown, RedisLink
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
    blocked_until: float = 0.0  # on the health's clock; open or cooling down until then
    cooling_down: bool = False  # the block is an upstream rate limit, not failures
    probe_until: float = 0.0  # half-open: a probe is in flight until it reports or then


BreakerState = Literal["closed", "open", "half_open", "cooling_down"]


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: BreakerState
    retry_in_seconds: int


class SharedHealth:
    """Each provider's Health as one JSON value in Redis."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def get(self, name: str) -> Health:
        return _decode(self._link.run(lambda client: client.get(PREFIX + "health:" + name)))

    def update(self, name: str, change: Callable[[Health], Health]) -> None:
        """Apply `change` atomically: redone if another instance wrote in between."""
        key = PREFIX + "health:" + name

        def apply(pipe: redis.client.Pipeline) -> None:
            before = _decode(pipe.get(key))
            after = change(before)
            if after != before:
                pipe.multi()
                pipe.set(key, _encode(after))

        self._link.run(lambda client: client.transaction(apply, key))


def _encode(health: Health) -> bytes:
    fields = asdict(health)
    fields["last_success_at"] = health.last_success_at and health.last_success_at.isoformat()
    if health.last_error is not None:
        fields["last_error"]["at"] = health.last_error.at.isoformat()
    return json.dumps(fields).encode()


def _decode(raw: bytes | None) -> Health:
    if raw is None:
        return Health()
    fields = json.loads(raw)
    if fields["last_success_at"] is not None:
        fields["last_success_at"] = datetime.fromisoformat(fields["last_success_at"])
    if fields["last_error"] is not None:
        error = fields["last_error"]
        fields["last_error"] = LastError(
            error["code"], error["message"], datetime.fromisoformat(error["at"])
        )
    return Health(**fields)


class ProviderHealth:
    def __init__(
        self,
        failure_threshold: int = 5,
        open_seconds: float = 30.0,
        default_cooldown_seconds: float = 60.0,
        probe_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedHealth | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.default_cooldown_seconds = default_cooldown_seconds
        self.probe_seconds = probe_seconds  # at least a probe call's whole upstream budget
        self._clock = clock
        self._shared = shared
        self._by_name: dict[str, Health] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Health:
        if self._shared is not None:
            try:
                return self._shared.get(name)
            except RedisDown:
                pass
        with self._lock:
            return self._by_name.get(name, Health())

    def breaker(self, name: str) -> BreakerView:
        health = self.get(name)
        now = self._clock()
        wait = health.blocked_until - now
        if wait > 0:
            return BreakerView("cooling_down" if health.cooling_down else "open", int(wait + 0.999))
        if health.consecutive_failures >= self.failure_threshold:
            return BreakerView("half_open", 0)
        return BreakerView("closed", 0)

    def admit(self, name: str) -> None:
        """Raise UpstreamError if the breaker refuses a call to `name` now."""
        self._update(name, lambda health, now: self._admitted(name, health, now))

    def succeeded(self, name: str) -> None:
        self._update(name, lambda before, _now: Health(datetime.now(UTC), before.last_error))

    def failed(self, name: str, error: UpstreamError) -> None:
        """Record a failed call to `name`; `error.code` says what it counts for."""
        self._update(name, lambda before, now: self._after_failure(before, error, now))

    def _update(self, name: str, change: Callable[[Health, float], Health]) -> None:
        """Apply `change(before, now)`: in Redis when shared and reachable, else here."""
        if self._shared is not None:
            try:
                self._shared.update(name, lambda before: change(before, self._clock()))
                return
            except RedisDown:
                pass
        with self._lock:
            self._by_name[name] = change(self._by_name.get(name, Health()), self._clock())

    def _admitted(self, name: str, health: Health, now: float) -> Health:
        wait = health.blocked_until - now
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
            if health.probe_until > now:
                raise UpstreamError(
                    "circuit_open", f"{name} is being probed after repeated failures"
                )
            return replace(health, probe_until=now + self.probe_seconds)
        return health

    def _after_failure(self, before: Health, error: UpstreamError, now: float) -> Health:
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
            return replace(before, probe_until=0.0)
        return Health(
            before.last_success_at,
            LastError(error.code, error.message, datetime.now(UTC)),
            failures,
            blocked_until,
            cooling_down,
        )
